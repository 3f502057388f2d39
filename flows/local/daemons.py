"""Processes flowdeck starts detached (the local Prefect server, a local worker).

Each has a pid file under FLOWDECK_HOME; these helpers read it, tell whether the process
still lives, and stop its process group.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


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
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def stop(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process group named by `pid_file`, SIGKILL after `timeout`.
    Returns False when nothing was running."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    terminate_group(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return True


def terminate_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by `pid` (started with start_new_session), and
    SIGKILL it if it is still there after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
