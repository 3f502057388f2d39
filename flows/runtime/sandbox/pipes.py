"""The call's bytes in and out of a sandbox, bounded while they are read.

`communicate()` reads everything a child writes before anyone can look at its size: 300 MB
on stderr took the engine to a gigabyte. Here each pipe has a budget; what is past it is
read and dropped (only counted), so a step that floods its output still finishes and
the engine holds a few hundred kilobytes at most. A reply over its budget cannot be a
real reply (the child refuses to send one that large): the sandbox is killed at once.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Exchange", "exchange"]

_CHUNK = 64 * 1024


@dataclass
class Exchange:
    reply: bytes
    reply_too_large: bool
    logs: bytes
    logs_dropped: int  # bytes of stderr past the budget, read and dropped
    timed_out: bool


def exchange(
    process: subprocess.Popen[bytes],
    payload: bytes,
    *,
    timeout: float,
    reply_limit: int,
    log_limit: int,
    kill: Callable[[], None],
    grace: float = 2.0,
) -> Exchange:
    """Write `payload` to stdin, read stdout and stderr until both close or `timeout`."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    kept: dict[int, bytearray] = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    limits = {process.stdout.fileno(): reply_limit, process.stderr.fileno(): log_limit}
    dropped = {fd: 0 for fd in kept}
    timed_out = reply_too_large = False
    pending = memoryview(payload)
    stdin = process.stdin.fileno()
    os.set_blocking(stdin, False)
    with selectors.DefaultSelector() as selector:
        for fd in kept:
            selector.register(fd, selectors.EVENT_READ)
        if pending:
            selector.register(stdin, selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        deadline = time.monotonic() + timeout
        while any(fd in selector.get_map() for fd in kept):  # until the child closes its output
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if timed_out or reply_too_large:
                    break  # killed and still not closed after the grace: give up on the pipes
                timed_out = True
                kill()
                deadline = time.monotonic() + grace
                continue
            for key, _ in selector.select(remaining):
                fd = key.fd
                if fd == stdin:
                    try:
                        written = os.write(stdin, pending[:_CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child is gone; its exit says why
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(stdin)
                        process.stdin.close()
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    selector.unregister(fd)
                    continue
                room = limits[fd] - len(kept[fd])
                kept[fd] += chunk[: max(room, 0)]
                dropped[fd] += max(len(chunk) - max(room, 0), 0)
                if fd == process.stdout.fileno() and dropped[fd] and not reply_too_large:
                    reply_too_large = True
                    kill()
                    deadline = time.monotonic() + grace
    stdout_fd, stderr_fd = process.stdout.fileno(), process.stderr.fileno()
    return Exchange(bytes(kept[stdout_fd]), reply_too_large, bytes(kept[stderr_fd]), dropped[stderr_fd], timed_out)
