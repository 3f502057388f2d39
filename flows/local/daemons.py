"""Processes flowdeck starts detached (the local Prefect server, a local worker).

Each has a pid file under FLOWDECK_HOME, but a pid file alone proves nothing: the process
may have died and its pid gone to another program, or the file may be gone while the
process runs. So a process is recognised by what it is (an `Identity`: words of its command
line, the directory it runs in, the port it listens on), found through its pid file or,
failing that, through its port, and only a process that is recognised is ever signalled.

    find(pid_file, identity)  the pid of the process, or None
    stop(pid, timeout)        SIGTERM its process group, SIGKILL after `timeout`
    listener(port)            who listens on a local port (for messages)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = ["Identity", "alive", "describe_listener", "find", "listener", "read_pid", "stop", "terminate_group"]


@dataclass(frozen=True)
class Identity:
    """What a process flowdeck started looks like."""

    argv: tuple[str, ...]  # consecutive words of its command line
    cwd: Path | None = None  # the directory it was started in
    port: int | None = None  # a port it (or a child of it) listens on

    def matches(self, pid: int) -> bool:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE or not _holds(process.cmdline(), self.argv):
                return False
            if self.cwd is not None and Path(process.cwd()).resolve() != self.cwd.resolve():
                return False
            return self.port is None or _listens(process, self.port)
        except (psutil.Error, OSError):
            return False


def _holds(cmdline: list[str], words: tuple[str, ...]) -> bool:
    size = len(words)
    return any(tuple(cmdline[i : i + size]) == words for i in range(len(cmdline) - size + 1))


def _listens(process: psutil.Process, port: int) -> bool:
    for each in [process, *process.children(recursive=True)]:
        try:
            if any(_is_listener(c, port) for c in each.net_connections(kind="tcp")):
                return True
        except (psutil.Error, OSError):
            continue
    return False


def _is_listener(connection: Any, port: int) -> bool:
    """`connection`: a psutil connection (per process or system-wide, two named tuples)."""
    return bool(connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port)


def listener(port: int) -> psutil.Process | None:
    """The process listening on `port` (None when nobody does, or it is not visible to us)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for connection in connections:
        if connection.pid is not None and _is_listener(connection, port):
            try:
                return psutil.Process(connection.pid)
            except psutil.Error:
                return None
    return None


def describe_listener(port: int) -> str | None:
    """`pid N: its command line` of the listener on `port`, for messages."""
    process = listener(port)
    if process is None:
        return None
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {process.pid}"


def find(pid_file: Path, identity: Identity) -> int | None:
    """The process `identity` describes: the pid in `pid_file` if it is that process, else
    (with a port) the listener on the port or the ancestor of it that is."""
    pid = read_pid(pid_file)
    if pid is not None and identity.matches(pid):
        return pid
    if identity.port is None:
        return None
    process = listener(identity.port)
    while process is not None and process.pid > 1:
        if identity.matches(process.pid):
            return process.pid
        try:
            process = process.parent()
        except psutil.Error:
            return None
    return None


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """Alive, and not a zombie (an exited child of this very process is reaped here)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child (started by another command)
        pass
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def stop(pid: int, timeout: float = 20.0) -> None:
    """Stop a process found by `find`: its whole process group when it leads one (flowdeck
    starts each in a session of its own), else the process alone."""
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    if leads_group:
        terminate_group(pid, timeout)
    else:
        _terminate(lambda signum: os.kill(pid, signum), pid, timeout)


def terminate_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by `pid` (started with start_new_session), and
    SIGKILL it if it is still there after `timeout`."""
    _terminate(lambda signum: os.killpg(pid, signum), pid, timeout)


def _terminate(send: Callable[[int], None], pid: int, timeout: float) -> None:
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return
    _wait_gone(pid, timeout)
    if alive(pid):
        try:
            send(signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
