"""The code step: the user's `run(ctx)` in a throw-away Python process.

User code is not trusted with the engine: it runs in a separate interpreter started with
`-I -S` (no site-packages, no PYTHON* variables), an empty environment (the engine's
secrets are not inherited), a fresh temporary working directory, its own session (so a
timeout kills everything it started), and limits on address space, CPU, file size and
core dumps. The context goes in as JSON on stdin; the result comes back as JSON on a
private copy of stdout, so whatever the user prints (or writes to fd 1) cannot corrupt it:
prints are returned as logs.

Starting an interpreter costs tens of milliseconds, so a few sandboxes are started ahead
of time and wait, idle, for their call. Each serves exactly one call and then exits: no
state passes from one call to the next. An idle sandbox exits by itself when the engine
goes away (its stdin closes).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable

from flowdeck.errors import StepError

POOL_SIZE = 2  # idle sandboxes kept ready; 0 starts one per call
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
MAX_FILE_MB = 64
MAX_LOG_CHARS = 64_000
_KILL_GRACE = 2.0  # seconds to collect a killed sandbox's pipes

logger = logging.getLogger(__name__)

# Runs in the sandbox. Kept short and stdlib-only: it is the trusted part of the child.
_BOOTSTRAP = r"""
import io, json, os, resource, sys
USER_FILE = "<code step>"

class Logs(io.TextIOBase):
    def __init__(self, limit):
        self.parts, self.size, self.limit = [], 0, limit
    def writable(self):
        return True
    def write(self, text):
        text = str(text)
        if self.size < self.limit:
            self.parts.append(text[: self.limit - self.size])
        self.size += len(text)
        return len(text)
    def text(self):
        extra = self.size - self.limit
        return "".join(self.parts) + (f"\n... {extra} more characters not kept" if extra > 0 else "")

def where(code, tb):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == USER_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line

def main():
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # fd 1 now leads to stderr: prints from C or subprocesses cannot reach the reply
    exec(compile("def run(ctx):\n    return ctx\n", USER_FILE, "exec"), {})  # the first compile costs ~2 ms: pay it while idle
    json.loads(json.dumps({"warm": [1.5, None, True]}))
    raw = sys.stdin.buffer.read()
    if not raw:
        return  # the engine closed the pipe without a call: the pool is shutting down
    request = json.loads(raw)
    del raw
    limit = request["memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (request["cpu_seconds"], request["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_bytes"], request["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    code = request["code"]
    logs = Logs(request["log_chars"])
    sys.stdout = sys.stderr = logs
    answer = {}
    try:
        namespace = {"__name__": "__flowdeck_code__"}
        exec(compile(code, USER_FILE, "exec"), namespace)
        run = namespace.get("run")
        if not callable(run):
            answer = {"error": {"type": "MissingRun", "message": "the code must define a function run(ctx)"}}
        else:
            value = run(request["ctx"])
            if hasattr(value, "__await__"):
                import asyncio
                value = asyncio.run(value)
            try:
                answer = {"value": json.loads(json.dumps(value, allow_nan=False))}
            except (TypeError, ValueError, RecursionError) as error:
                answer = {"error": {"type": "NotSerialisable", "message": f"{type(value).__name__}: {error}"}}
    except SyntaxError as error:
        line = error.lineno if error.filename == USER_FILE else None
        answer = {"error": {"type": "SyntaxError", "message": str(error.msg), "line": line}}
    except BaseException as error:
        answer = {"error": {"type": type(error).__name__, "message": str(error), "line": where(code, error.__traceback__)}}
    answer["logs"] = logs.text()
    try:
        text = json.dumps(answer)
    except MemoryError:
        text = json.dumps({"error": {"type": "MemoryError", "message": ""}})
    reply.write(text)
    reply.flush()
    os._exit(0)  # skip interpreter teardown: the engine is waiting for the pipes to close

main()
"""


@dataclass
class _Sandbox:
    """One started interpreter waiting for its single call, and its working directory."""

    process: subprocess.Popen
    workdir: str

    @classmethod
    def start(cls) -> "_Sandbox":
        workdir = tempfile.mkdtemp(prefix="flowdeck-code-")
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env={**SANDBOX_ENV, "TMPDIR": workdir, "HOME": workdir},
                start_new_session=True,  # its own process group: a kill takes its children too
                close_fds=True,
            )
        except OSError as error:
            shutil.rmtree(workdir, ignore_errors=True)
            raise StepError(f"code step: could not start a Python sandbox ({error})") from None
        return cls(process, workdir)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def call(self, payload: bytes, timeout: float) -> tuple[bytes, bytes, bool]:
        """Send the call, wait at most `timeout` s; (stdout, stderr, timed_out). Cleans up."""
        try:
            try:
                stdout, stderr = self.process.communicate(payload, timeout=timeout)
                return stdout, stderr, False
            except subprocess.TimeoutExpired:
                self.kill()
                try:
                    stdout, stderr = self.process.communicate(timeout=_KILL_GRACE)
                except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipes
                    stdout, stderr = b"", b""
                return stdout, stderr, True
        finally:
            self.close()

    def close(self) -> None:
        self.kill()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)


class _SandboxPool:
    """Idle sandboxes started ahead of time; `take` never waits for one to start."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: collections.deque[_Sandbox] = collections.deque()
        self._starting = 0
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def take(self) -> _Sandbox:
        with self._lock:
            if self._owner != os.getpid():  # forked: those processes belong to the parent
                self._idle.clear()
                self._owner = os.getpid()
            while self._idle:
                sandbox = self._idle.popleft()
                if sandbox.alive():
                    return sandbox
                sandbox.close()
        return _Sandbox.start()

    def refill(self) -> None:
        while True:
            with self._lock:
                if len(self._idle) + self._starting >= self.size:
                    return
                self._starting += 1
            try:
                sandbox = _Sandbox.start()
            except StepError as error:
                logger.warning("%s", error.message)
                return
            finally:
                with self._lock:
                    self._starting -= 1
            with self._lock:
                self._idle.append(sandbox)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        if self._owner == os.getpid():
            for sandbox in idle:
                sandbox.close()


_pool = _SandboxPool(POOL_SIZE)
atexit.register(_pool.close)


def warm_up() -> None:
    """Start the idle sandboxes now (e.g. at server start) so the first call is fast too."""
    _pool.refill()


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
    try:
        payload = json.dumps(
            {
                "code": code,
                "ctx": ctx,
                "memory_mb": int(memory_mb),
                "cpu_seconds": max(1, math.ceil(timeout) + 1),
                "file_bytes": MAX_FILE_MB * 1024 * 1024,
                "log_chars": MAX_LOG_CHARS,
            }
        ).encode()
    except (TypeError, ValueError) as error:
        raise StepError(f"code step: the context cannot be passed as JSON ({error})") from None

    sandbox = _pool.take()
    try:
        stdout, stderr, timed_out = await asyncio.to_thread(sandbox.call, payload, timeout)
    except asyncio.CancelledError:
        sandbox.kill()  # the worker thread then finishes and cleans up
        raise
    finally:
        if _pool.size:  # after the call: a starting interpreter would compete with it for CPU
            asyncio.get_running_loop().run_in_executor(None, _pool.refill)

    if timed_out:
        raise StepError(f"code step timed out after {timeout:g} s and was stopped (endless loop?)")
    answer = _parse_answer(stdout)
    if answer is None:
        raise StepError(_describe_exit(sandbox.process.returncode, stderr, memory_mb, timeout))
    logs = _join_logs(answer.get("logs") or "", stderr)
    if logs:
        (on_logs or _log_output)(logs)
    error = answer.get("error")
    if error is not None:
        raise StepError(_describe_error(error, code, memory_mb), details={"logs": logs} if logs else None)
    return answer.get("value")


def _parse_answer(stdout: bytes) -> dict[str, Any] | None:
    if not stdout:
        return None
    try:
        answer = json.loads(stdout)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _describe_error(error: dict[str, Any], code: str, memory_mb: int) -> str:
    kind = error.get("type") or "Error"
    message = error.get("message") or ""
    if kind == "MissingRun":
        return "code step: the code must define a function run(ctx)"
    if kind == "NotSerialisable":
        return (
            f"code step: run(ctx) returned a value that is not JSON-serialisable ({message}); "
            "return dicts, lists, strings, numbers, booleans or None"
        )
    if kind == "MemoryError":
        return f"code step ran out of memory (limit {memory_mb} MB)"
    text = f"code step raised {kind}" + (f": {message}" if message else "")
    line = error.get("line")
    if isinstance(line, int) and line > 0:
        lines = code.splitlines()
        source = lines[line - 1].strip() if line <= len(lines) else ""
        text += f" (line {line}" + (f": {source}" if source else "") + ")"
    return text


def _describe_exit(returncode: int | None, stderr: bytes, memory_mb: int, timeout: float) -> str:
    if returncode is not None and returncode < 0:
        number = -returncode
        reasons = {
            signal.SIGSEGV: "crashed with a segmentation fault",
            signal.SIGBUS: "crashed with a bus error",
            signal.SIGABRT: "aborted",
            signal.SIGXCPU: f"used more CPU time than its {timeout:g} s limit",
            signal.SIGXFSZ: f"wrote a file larger than {MAX_FILE_MB} MB",
            signal.SIGKILL: f"was killed (out of memory? the limit is {memory_mb} MB)",
        }
        reason = reasons.get(number) or f"was killed by signal {_signal_name(number)}"
        return f"code step {reason}"
    tail = stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
    detail = f": {' / '.join(tail)}" if tail else ""
    if any("MemoryError" in line for line in tail):
        return f"code step ran out of memory (limit {memory_mb} MB)"
    return f"code step exited (code {returncode}) without returning a result{detail}"


def _join_logs(printed: str, stderr: bytes) -> str:
    """What the code printed, then what reached the process's own fds (C code, subprocesses)."""
    raw = stderr.decode("utf-8", errors="replace")
    if len(raw) > MAX_LOG_CHARS:
        raw = raw[:MAX_LOG_CHARS] + f"\n... {len(raw) - MAX_LOG_CHARS} more characters not kept"
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
