"""The code step: the user's `run(ctx)` in a throw-away Python process.

The sandbox itself (bubblewrap namespaces, an unprivileged uid, a cgroup bounding the memory
and processes of the whole tree, a separate interpreter with no site-packages; pooled, one
call each) is `flowdeck.runtime.sandbox`: this module builds the call, sends it, and turns
the reply, the exit status, the cgroup's counters or the timeout into the step's result or
a StepError a person can act on. Whatever the user prints (or writes to fd 1) cannot corrupt
the reply: prints are returned as logs, cut at MAX_LOG_CHARS while they are read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
from collections.abc import Callable
from typing import Any

from flowdeck.definition.model import MAX_CODE_MEMORY_MB, MAX_CODE_TIMEOUT
from flowdeck.errors import StepError
from flowdeck.runtime.input_bounds import JsonRefused, check_value, encoded_size, loads_strict
from flowdeck.runtime.sandbox.host import MAX_PROCESSES, POOL_SIZE, SANDBOX_ENV, CallOutcome, warm_up
from flowdeck.runtime.sandbox.host import pool as _pool

__all__ = ["run_code", "warm_up", "POOL_SIZE", "SANDBOX_ENV", "MAX_FILE_MB", "MAX_LOG_CHARS", "MAX_RESULT_BYTES"]

MAX_FILE_MB = 64
MIN_MEMORY_MB = 16  # the schema's minimum: an interpreter needs about 10 MiB to start
MAX_LOG_CHARS = 64_000
MAX_RESULT_BYTES = 1024 * 1024  # a step's output is kept in the context, the journal and Prefect
# The reply holds the value and the logs (JSON escapes take up to 6 bytes a character)
_REPLY_LIMIT = MAX_RESULT_BYTES + 6 * MAX_LOG_CHARS + 64 * 1024

logger = logging.getLogger(__name__)


async def run_code(
    code: str,
    ctx: dict[str, Any],
    *,
    timeout: float,
    memory_mb: int,
    on_logs: Callable[[str], None] | None = None,
) -> Any:
    """Run `run(ctx)` from `code` in a sandbox; return its JSON result.

    What the code prints goes to `on_logs` (default: this module's logger). Any failure
    (exception, syntax error, timeout, memory, crash, non-JSON result) is a StepError.
    """
    if not (0 < timeout <= MAX_CODE_TIMEOUT and MIN_MEMORY_MB <= memory_mb <= MAX_CODE_MEMORY_MB):
        raise StepError(  # validation reports these in the definition; this is the engine's own guard
            f"code step: timeout {timeout:g} s and memory_mb {memory_mb} must be within (0, {MAX_CODE_TIMEOUT:g}] s "
            f"and [{MIN_MEMORY_MB}, {MAX_CODE_MEMORY_MB}] MiB"
        )
    try:
        payload = json.dumps(
            {
                "code": code,
                "ctx": ctx,
                "memory_mb": int(memory_mb),
                "cpu_seconds": max(1, math.ceil(timeout) + 1),
                "file_bytes": MAX_FILE_MB * 1024 * 1024,
                "log_chars": MAX_LOG_CHARS,
                "result_bytes": MAX_RESULT_BYTES,
            }
        ).encode()
    except (TypeError, ValueError) as error:
        raise StepError(f"code step: the context cannot be passed as JSON ({error})") from None

    sandbox = await asyncio.to_thread(_pool.take)  # a cold start (or the host check) off the loop
    try:
        outcome = await asyncio.to_thread(sandbox.call, payload, timeout, int(memory_mb), _REPLY_LIMIT, MAX_LOG_CHARS)
    except asyncio.CancelledError:
        sandbox.kill()  # the worker thread then finishes and cleans up
        raise
    finally:
        if _pool.size:  # after the call: a starting interpreter would compete with it for CPU
            asyncio.get_running_loop().run_in_executor(None, _pool.refill)

    if outcome.timed_out:
        raise StepError(f"code step timed out after {timeout:g} s and was stopped (endless loop?)")
    if outcome.reply_too_large:
        raise StepError(f"code step wrote a reply larger than {_REPLY_LIMIT // 1024} KiB and was stopped")
    answer = _parse_answer(outcome.reply)
    if answer is None:
        raise StepError(_describe_exit(outcome, memory_mb, timeout))
    logs = _join_logs(_text(answer.get("logs"))[: MAX_LOG_CHARS + 100], outcome)
    if logs:
        (on_logs or _log_output)(logs)
    failure = answer.get("error")
    if failure is None and outcome.out_of_memory:
        failure = {"type": "MemoryError"}  # a child process was killed; the answer may be partial
    if failure is not None:
        if not isinstance(failure, dict):
            failure = {"type": "Error", "message": _text(failure)}
        raise StepError(_describe_error(failure, code, memory_mb), details={"logs": logs} if logs else None)
    return _checked_value(answer.get("value"))


def _parse_answer(stdout: bytes) -> dict[str, Any] | None:
    """The reply as strict JSON. The code can write any bytes to the reply pipe, so nothing
    here trusts the child: NaN, 1e999, huge numbers, invalid UTF-8, deep nesting are no reply."""
    if not stdout:
        return None
    try:
        answer = loads_strict(stdout, "the reply")
    except JsonRefused as refused:
        if refused.syntax:
            return None  # cut short (the sandbox died while writing): the exit status says why
        raise _unstorable(refused) from None
    return answer if isinstance(answer, dict) else None


def _unstorable(refused: JsonRefused) -> StepError:
    return StepError(
        f"code step: run(ctx) returned a value that cannot be stored: {refused.message} "
        "(return plain JSON: finite numbers, integers within 64 bits, at most 64 levels, Unicode text)"
    )


def _checked_value(value: Any) -> Any:
    """The step's output joins the context, the journal and Prefect: the bounds of an input."""
    try:
        check_value(value, "the value")
    except JsonRefused as refused:
        raise _unstorable(refused) from None
    if encoded_size(value) > MAX_RESULT_BYTES:  # the child refuses these; a forged reply is not the child
        raise StepError(f"code step: run(ctx) returned more than {MAX_RESULT_BYTES // (1024 * 1024)} MiB of JSON")
    return value


def _text(value: Any) -> str:
    """Text from the reply as valid Unicode: a lone surrogate (print("\\ud800")) becomes U+FFFD."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if not value.isascii() else value


def _describe_error(error: dict[str, Any], code: str, memory_mb: int) -> str:
    kind = _text(error.get("type"))[:200] or "Error"
    message = _text(error.get("message"))[:MAX_LOG_CHARS]
    if kind == "MissingRun":
        return "code step: the code must define a function run(ctx)"
    if kind == "NotSerialisable":
        return (
            f"code step: run(ctx) returned a value that is not JSON-serialisable ({message}); "
            "return dicts, lists, strings, numbers, booleans or None"
        )
    if kind == "MemoryError":
        return _out_of_memory(memory_mb)
    if kind == "ResultTooLarge":
        return (
            f"code step: run(ctx) returned {message} bytes of JSON, over the {MAX_RESULT_BYTES // (1024 * 1024)} MiB "
            "limit of a step's output; return less (a summary, or store the data with an http step)"
        )
    text = f"code step raised {kind}" + (f": {message}" if message else "")
    line = error.get("line")
    if isinstance(line, int) and line > 0:
        lines = code.splitlines()
        source = lines[line - 1].strip() if line <= len(lines) else ""
        text += f" (line {line}" + (f": {source}" if source else "") + ")"
    return text


def _out_of_memory(memory_mb: int) -> str:
    return f"code step ran out of memory (limit {memory_mb} MB for the step and every process it started)"


def _describe_exit(outcome: CallOutcome, memory_mb: int, timeout: float) -> str:
    if outcome.out_of_memory:
        return _out_of_memory(memory_mb)
    returncode = outcome.returncode
    # bwrap passes on the code's exit status; a signal that ended the code is 128 + its number
    number = -returncode if returncode is not None and returncode < 0 else 0
    if returncode is not None and returncode > 128:
        number = returncode - 128
    if number:
        reasons: dict[int, str] = {
            signal.SIGSEGV: "crashed with a segmentation fault",
            signal.SIGBUS: "crashed with a bus error",
            signal.SIGABRT: "aborted",
            signal.SIGXCPU: f"used more CPU time than its {timeout:g} s limit",
            signal.SIGXFSZ: f"wrote a file larger than {MAX_FILE_MB} MB",
            signal.SIGKILL: f"was killed (out of memory? the limit is {memory_mb} MB)",
        }
        reason = reasons.get(number) or f"was killed by signal {_signal_name(number)}"
        return f"code step {reason}"
    tail = outcome.logs.decode("utf-8", errors="replace").strip().splitlines()[-3:]
    detail = f": {' / '.join(tail)}" if tail else ""
    if any("MemoryError" in line for line in tail):
        return _out_of_memory(memory_mb)
    if outcome.hit_process_limit:
        detail += f" (it reached the limit of {MAX_PROCESSES} processes)"
    return f"code step exited (code {returncode}) without returning a result{detail}"


def _join_logs(printed: str, outcome: CallOutcome) -> str:
    """What the code printed, then what reached the process's own fds (C code, subprocesses)."""
    raw = outcome.logs.decode("utf-8", errors="replace")
    if outcome.logs_dropped:
        raw += f"\n... {outcome.logs_dropped} more bytes not kept"
    if printed and raw and not printed.endswith("\n"):
        printed += "\n"
    return printed + raw


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _log_output(logs: str) -> None:
    logger.info("code step printed:\n%s", logs)
