"""Spawn a detached process and wait until it is ready: the one way flowdeck (and its tests
and benchmarks) starts a server or a worker.

    free_port()                  a TCP port on 127.0.0.1 nobody listens on now
    spawn(argv, log_path, ...)   start argv in a session of its own (it survives its parent),
                                 stdout and stderr appended to log_path, stdin closed
    Spawned.wait_ready(ready)    poll `ready()` until it holds; StartError when the process
                                 exits first or `timeout` passes
    Spawned.says(b"serving")     a readiness check: the process wrote this to its log
    answers(url)                 a readiness check: GET url answers 200

Nothing here imports prefect.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["Spawned", "StartError", "answers", "flowdeck_command", "free_port", "python_module", "spawn"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_module(*arguments: str) -> list[str]:
    """`python -m ...` with this interpreter."""
    return [sys.executable, "-m", *arguments]


def flowdeck_command(*arguments: str) -> list[str]:
    """`flowdeck ...` as a user runs it, with this interpreter."""
    return python_module("flowdeck", *arguments)


def answers(url: str, timeout: float = 1.0) -> bool:
    """GET `url` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class StartError(RuntimeError):
    """A spawned process exited (`returncode` set) or was not ready in time (`returncode` None).
    The message carries the end of its log."""

    def __init__(self, spawned: Spawned, returncode: int | None, timeout: float) -> None:
        what = f"exited with code {returncode}" if returncode is not None else f"was not ready within {timeout:.0f} s"
        super().__init__(f"{spawned.name} {what}; its log {spawned.log_path}:\n{spawned.output()[-3000:]}")
        self.spawned = spawned
        self.returncode = returncode


@dataclass
class Spawned:
    """A detached process and the log file it writes to (its output starts at `log_offset`)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What the process wrote to its log so far."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def says(self, marker: bytes) -> Callable[[], bool]:
        """A readiness check: the process wrote `marker` to its log."""
        text = marker.decode()
        return lambda: text in self.output()

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, *, interval: float = 0.1, also: Iterable[Spawned] = ()
    ) -> None:
        """Wait until `ready()` holds. StartError if this process (or one of `also`, started
        with it) exits first, or when `timeout` passes."""
        watched = [self, *also]
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            for spawned in watched:
                if spawned.process.poll() is not None:
                    raise StartError(spawned, spawned.process.returncode, timeout)
            if time.monotonic() > deadline:
                raise StartError(self, None, timeout)
            time.sleep(interval)


def spawn(
    argv: list[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    pid_file: Path | None = None,
    fresh_log: bool = False,
    name: str | None = None,
) -> Spawned:
    """Start `argv` detached: a session of its own (so it outlives the caller and its whole
    process group can be stopped), stdout and stderr appended to `log_path` (truncated with
    `fresh_log`), stdin closed. Writes the pid to `pid_file` when given."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb" if fresh_log else "ab") as log:  # the child keeps its own descriptor
        offset = log.tell()
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    if pid_file is not None:
        pid_file.write_text(str(process.pid))
    return Spawned(name or " ".join(argv[2:4] if argv[1:2] == ["-m"] else argv[:1]), process, log_path, offset)
