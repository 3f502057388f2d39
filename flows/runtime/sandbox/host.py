"""The engine's side of the code-step sandbox: start, pool, call and kill child processes.

User code is not trusted with the engine: it runs in a separate interpreter started with
`-I -S` (no site-packages, no PYTHON* variables) on `child.py`, an empty environment (the
engine's secrets are not inherited), a fresh temporary working directory, its own session
(so a timeout kills everything it started), and limits on address space, CPU, file size and
core dumps (set by the child once it has the call). The call goes in as JSON on stdin; the
reply comes back as JSON on a private copy of stdout.

Starting an interpreter costs tens of milliseconds, so a few sandboxes are started ahead
of time and wait, idle, for their call. Each serves exactly one call and then exits: no
state passes from one call to the next. An idle sandbox exits by itself when the engine
goes away (its stdin closes).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from flowdeck.errors import StepError

__all__ = ["POOL_SIZE", "SANDBOX_ENV", "CHILD_PROGRAM", "Sandbox", "SandboxPool", "pool", "warm_up"]

POOL_SIZE = 2  # idle sandboxes kept ready; 0 starts one per call
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
CHILD_PROGRAM = str(Path(__file__).resolve().with_name("child.py"))  # run by path: -I -S sees no flowdeck
_KILL_GRACE = 2.0  # seconds to collect a killed sandbox's pipes

logger = logging.getLogger("flowdeck.runtime.steps.code")  # the code step's logger, as it always was


@dataclass
class Sandbox:
    """One started interpreter waiting for its single call, and its working directory."""

    process: subprocess.Popen[bytes]
    workdir: str

    @classmethod
    def start(cls) -> Sandbox:
        workdir = tempfile.mkdtemp(prefix="flowdeck-code-")
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", CHILD_PROGRAM],
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


class SandboxPool:
    """Idle sandboxes started ahead of time; `take` never waits for one to start."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: collections.deque[Sandbox] = collections.deque()
        self._starting = 0
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def take(self) -> Sandbox:
        with self._lock:
            if self._owner != os.getpid():  # forked: those processes belong to the parent
                self._idle.clear()
                self._owner = os.getpid()
            while self._idle:
                sandbox = self._idle.popleft()
                if sandbox.alive():
                    return sandbox
                sandbox.close()
        return Sandbox.start()

    def refill(self) -> None:
        while True:
            with self._lock:
                if len(self._idle) + self._starting >= self.size:
                    return
                self._starting += 1
            try:
                sandbox = Sandbox.start()
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


pool = SandboxPool(POOL_SIZE)
atexit.register(pool.close)


def warm_up() -> None:
    """Start the idle sandboxes now (e.g. at server start) so the first call is fast too."""
    pool.refill()
