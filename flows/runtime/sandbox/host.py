"""The engine's side of the code-step sandbox: start, pool, call and kill sandboxes.

User code is not trusted with the engine. Each sandbox is a `python -I -S -B child.py`
(no site-packages, nothing of flowdeck) under bubblewrap, in namespaces of its own, as an
unprivileged uid, under a seccomp filter, in a cgroup of its own that bounds the memory, the
number of processes and the CPU share of its whole tree (`launcher.py`, `seccomp.py`,
`cgroups.py`; docs/security.md says what each part stops).
The call goes in as JSON on stdin; the reply comes back as JSON on a private copy of
stdout; both are bounded while they are read (`pipes.py`). The child also keeps rlimits
(address space, CPU, file size, no core dumps) for clear errors inside one process.

Starting a sandbox costs tens of milliseconds, so a few are started ahead of time and
wait, idle, for their call. Each serves exactly one call and is then torn down (its PID
namespace and cgroup with it): no state and no process passes from one call to the next,
and no sandbox can see another. An idle sandbox exits by itself when the engine goes away
(bwrap's --die-with-parent; its stdin closes).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import logging
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from flowdeck.errors import StepError
from flowdeck.runtime.sandbox import seccomp
from flowdeck.runtime.sandbox.cgroups import CgroupUnavailable, SandboxCgroup
from flowdeck.runtime.sandbox.launcher import SANDBOX_ENV, SandboxUnavailable, command, ensure_available
from flowdeck.runtime.sandbox.pipes import exchange

__all__ = [
    "CHILD_PROGRAM",
    "MAX_PROCESSES",
    "POOL_SIZE",
    "SANDBOX_ENV",
    "CallOutcome",
    "Sandbox",
    "SandboxPool",
    "pool",
    "warm_up",
]

POOL_SIZE = 2  # idle sandboxes kept ready; 0 starts one per call
MAX_PROCESSES = 64  # processes (and threads) of one step's whole tree, bwrap's init included
TMP_BYTES = 64 * 1024 * 1024  # the private /tmp (its pages count against memory_mb too)
IDLE_MEMORY_MB = 256  # the limit while idle; the call sets its own memory_mb
CHILD_PROGRAM = str(Path(__file__).resolve().with_name("child.py"))  # run by path: -I -S sees no flowdeck
_KILL_GRACE = 2.0  # seconds to collect a killed sandbox's pipes

logger = logging.getLogger("flowdeck.runtime.steps.code")  # the code step's logger, as it always was


@dataclass
class CallOutcome:
    """What one call produced, as the engine saw it (bounded), and why the sandbox ended."""

    reply: bytes
    reply_too_large: bool
    logs: bytes
    logs_dropped: int
    timed_out: bool
    returncode: int | None
    out_of_memory: bool
    hit_process_limit: bool


_starters: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_starters_lock = threading.Lock()


def _starter() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread of this process that starts sandboxes.

    bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that forked
    it ends: a sandbox started from a short-lived executor thread would be killed with it.
    This thread lives as long as the process (one per pid: a forked engine gets its own).
    """
    with _starters_lock:
        starter = _starters.get(os.getpid())
        if starter is None:
            starter = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowdeck-sandbox-start")
            _starters.clear()
            _starters[os.getpid()] = starter
        return starter


def _popen(argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
        env=env,  # not the engine's: its secrets reach no process of the chain
        start_new_session=True,  # its own process group: a kill takes the launcher chain too
        close_fds=True,
        pass_fds=pass_fds,  # the seccomp filter's pipe, nothing else of the engine's
    )


@dataclass
class Sandbox:
    """One isolated interpreter waiting for its single call, and its cgroup."""

    process: subprocess.Popen[bytes]
    cgroup: SandboxCgroup

    @classmethod
    def start(cls) -> Sandbox:
        ensure_available(CHILD_PROGRAM, TMP_BYTES)
        try:
            cgroup = SandboxCgroup.create(MAX_PROCESSES, IDLE_MEMORY_MB)
        except CgroupUnavailable as error:
            raise SandboxUnavailable(f"code steps cannot run here: {error}") from None
        seccomp_fd = seccomp.filter_fd()  # the program is cached: ensure_available built it
        try:
            launch = command(CHILD_PROGRAM, cgroup.procs_files, TMP_BYTES, seccomp_fd=seccomp_fd)
            process = _starter().submit(_popen, launch.argv, launch.env, launch.pass_fds).result()
        except OSError as error:
            cgroup.remove()
            raise StepError(f"code step: could not start a Python sandbox ({error})") from None
        finally:
            os.close(seccomp_fd)  # bwrap has its own copy of the pipe, and reads it to the end
        return cls(process, cgroup)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.cgroup.kill_all()

    def call(self, payload: bytes, timeout: float, memory_mb: int, reply_limit: int, log_limit: int) -> CallOutcome:
        """Send the call, wait at most `timeout` s, read at most the limits. Cleans up."""
        try:
            try:
                self.cgroup.limit_memory(memory_mb)
            except OSError:  # the idle interpreter already uses more than the step may
                return CallOutcome(b"", False, b"", 0, False, None, True, False)
            seen = exchange(
                self.process,
                payload,
                timeout=timeout,
                reply_limit=reply_limit,
                log_limit=log_limit,
                kill=self.kill,
                grace=_KILL_GRACE,
            )
            try:
                returncode: int | None = self.process.wait(timeout=_KILL_GRACE)
            except subprocess.TimeoutExpired:
                self.kill()
                returncode = None
            return CallOutcome(
                seen.reply,
                seen.reply_too_large,
                seen.logs,
                seen.logs_dropped,
                seen.timed_out,
                returncode,
                self.cgroup.out_of_memory(),
                self.cgroup.hit_process_limit(),
            )
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
        if not self.cgroup.remove():
            logger.warning("code step: the cgroup %s could not be removed yet", self.cgroup.memory_dir)


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
