"""The program a code-step sandbox runs: read one call on stdin, run `run(ctx)`, reply.

Started by `flowdeck.runtime.sandbox.host` as `python -I -S -B <this file>`: no
site-packages, so it imports nothing of flowdeck (nor Prefect), only the standard library.
Kept short and stdlib-only: it is the trusted part of the child, and it must start fast (a
few sandboxes are started ahead of time and wait, idle, in `sys.stdin.buffer.read()`).

The call is JSON `{code, ctx, memory_mb, cpu_seconds, file_bytes, log_chars, result_bytes}`; the reply,
written to a private copy of fd 1, is JSON `{"value": ...}` or `{"error": {type, message,
line}}`, with `"logs"`: what the code printed. fd 1 itself is pointed at stderr, so prints
from C code or subprocesses cannot corrupt the reply. A return value whose JSON is over
`result_bytes` is refused here, where it costs the sandbox's memory, not the engine's.
"""

# No `from __future__ import annotations` here: compile() passes the future flags of its
# caller on to the code it compiles, and the user's code must compile as plain Python.
import io
import json
import os
import resource
import sys

TYPE_CHECKING = False  # typing costs milliseconds at start: only the type checker reads it
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

USER_FILE = "<code step>"


class Logs(io.TextIOBase):
    """What the code prints, kept up to `limit` characters (the rest is counted)."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        if self.size < self.limit:
            self.parts.append(text[: self.limit - self.size])
        self.size += len(text)
        return len(text)

    def text(self) -> str:
        extra = self.size - self.limit
        return "".join(self.parts) + (f"\n... {extra} more characters not kept" if extra > 0 else "")


def where(code: str, tb: "TracebackType | None") -> "int | None":
    """The line of the user's code where the exception was raised (its innermost frame)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == USER_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # fd 1 now leads to stderr: prints from C or subprocesses cannot reach the reply
    # the first compile costs ~2 ms: pay it while idle
    exec(compile("def run(ctx):\n    return ctx\n", USER_FILE, "exec"), {})
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
    answer: dict[str, Any] = {}
    value_text = None  # the return value's JSON, spliced into the reply as it is
    try:
        namespace: dict[str, Any] = {"__name__": "__flowdeck_code__"}
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
                value_text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as error:
                answer = {"error": {"type": "NotSerialisable", "message": f"{type(value).__name__}: {error}"}}
            del value
            if value_text is not None and len(value_text) > request["result_bytes"]:
                size = len(value_text)
                value_text = None
                answer = {"error": {"type": "ResultTooLarge", "message": str(size)}}
    except SyntaxError as error:
        line = error.lineno if error.filename == USER_FILE else None
        answer = {"error": {"type": "SyntaxError", "message": str(error.msg), "line": line}}
    except BaseException as error:
        value_text = None
        answer = {
            "error": {"type": type(error).__name__, "message": str(error), "line": where(code, error.__traceback__)}
        }
    answer["logs"] = logs.text()
    try:
        text = json.dumps(answer)
        if value_text is not None:
            text = '{"value": ' + value_text + ", " + text[1:]
    except MemoryError:
        text = json.dumps({"error": {"type": "MemoryError", "message": ""}})
    reply.write(text)
    reply.flush()
    os._exit(0)  # skip interpreter teardown: the engine is waiting for the pipes to close


if __name__ == "__main__":
    main()
