"""Red team on the sandbox's walls, from inside a code step: the mount view, the host's
sockets, the sandbox's own init, the next call's sandbox, signals and the kernel's memory.

Each of these held when tried (issue 12's red team); they stay as regression tests. What
the sandbox still does not stop is in docs/security.md.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Iterator

import pytest
from sandbox_calls import processes_named, run

from flowdeck.errors import StepError
from flowdeck.runtime.sandbox import host

MOUNT_VIEW = """
import os
def run(ctx):
    seen = {}
    for path in ("/proc/self/root", "/proc/1/root", "/proc/1/cwd", "/"):
        seen[path] = sorted(os.listdir(path))
    for path in ("/sys", "/etc", "/run", "/root", "/work", "/proc/kcore", "/proc/sysrq-trigger", "/dev/vda"):
        seen[path] = os.path.exists(path)
    os.symlink("/proc/1/root/../../..", "/tmp/up")
    seen["up"] = sorted(os.listdir("/tmp/up"))
    return seen
"""


def assert_gone(marker: bytes) -> None:
    """No process with `marker` in its command line is left (the kernel may take a moment)."""
    deadline = time.monotonic() + 3
    while processes_named(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(marker) == []


def test_no_path_leads_out_of_the_mount_view() -> None:
    seen = run(MOUNT_VIEW)
    allowed = {"bin", "dev", "flowdeck", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin", "tmp", "usr"}
    for path in ("/proc/self/root", "/proc/1/root", "/", "up"):
        assert set(seen[path]) <= allowed, (path, seen[path])
    for path in ("/sys", "/etc", "/run", "/work", "/proc/kcore", "/proc/sysrq-trigger", "/dev/vda"):
        assert seen[path] is False, path


@pytest.fixture
def abstract_socket() -> Iterator[str]:
    """A listening abstract unix socket on the host (as X11, D-Bus or a local agent keeps)."""
    name = f"flowdeck-redteam-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen()
    listener.setblocking(False)
    yield name
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        connection = None
    listener.close()
    assert connection is None, "a code step reached an abstract unix socket of the host"


def test_the_hosts_abstract_unix_sockets_are_out_of_reach(abstract_socket: str) -> None:
    source = """
    import socket
    def run(ctx):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect("\\0" + ctx["name"])
            return "connected"
        except OSError as error:
            return type(error).__name__
    """
    assert run(source, {"name": abstract_socket}) == "ConnectionRefusedError"


def test_nothing_a_step_leaves_reaches_the_next_call() -> None:
    """The next call's sandbox is already started (pooled) while this one runs."""
    host.warm_up()
    time.sleep(0.5)
    plant = """
    import os, socket, subprocess
    def run(ctx):
        for path in ("/tmp/planted", "/dev/shm/planted"):
            with open(path, "w") as planted:
                planted.write("from the previous call")
        keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        keep.bind("\\0flowdeck-planted")
        keep.listen()
        subprocess.Popen(["sleep", "37.71"], start_new_session=True)
        return "planted"
    """
    look = """
    import os, socket
    def run(ctx):
        found = [path for path in ("/tmp/planted", "/dev/shm/planted") if os.path.exists(path)]
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect("\\0flowdeck-planted")
            found.append("socket")
        except OSError:
            pass
        found += [p for p in os.listdir("/proc") if p.isdigit() and p not in ("1", str(os.getpid()))]
        return found
    """
    assert run(plant) == "planted"
    assert run(look) == []
    assert_gone(b"37.71")


def test_tracing_the_sandbox_init_is_refused() -> None:
    """ptrace of pid 1 (the sandbox's init, same uid) was allowed by the kernel and stopped it:
    the step hung until its timeout. The seccomp filter now refuses ptrace (EPERM) at once,
    and the tree still goes down with the step."""
    source = """
    import ctypes, subprocess
    def run(ctx):
        subprocess.Popen(["sleep", "37.72"], start_new_session=True)
        libc = ctypes.CDLL(None, use_errno=True)
        return [libc.ptrace(16, 1, 0, 0), ctypes.get_errno()]  # PTRACE_ATTACH
    """
    started = time.monotonic()
    assert run(source, timeout=5) == [-1, errno.EPERM]
    assert time.monotonic() - started < 5
    assert_gone(b"37.72")


def test_a_step_that_ignores_signals_and_spins_is_stopped_at_its_timeout() -> None:
    source = """
    import os, signal, subprocess
    def run(ctx):
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
        subprocess.Popen(["sleep", "37.73"], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            while True:
                pass
        while True:
            pass
    """
    started = time.monotonic()
    with pytest.raises(StepError, match="timed out"):
        run(source, timeout=2)
    assert time.monotonic() - started < 6
    assert_gone(b"37.73")


def test_inodes_and_dev_shm_are_bounded_by_the_steps_memory() -> None:
    """/dev is bwrap's own tmpfs (no size option); its pages and inodes count in the cgroup."""
    source = """
    import os, time
    def run(ctx):
        started, count = time.monotonic(), 0
        try:
            while count < 400_000 and time.monotonic() - started < 8:
                open(f"/dev/shm/f{count}", "w").close()
                count += 1
        except OSError as error:
            return [count, error.errno]
        return [count, 0]
    """
    try:
        count, errno = run(source, memory_mb=64, timeout=15)
    except StepError as error:
        assert "memory" in error.message, error.message
        return
    assert errno != 0 or count < 400_000, "400,000 inodes under memory_mb: 64"
