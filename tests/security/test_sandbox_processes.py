"""Attacks from inside a code step on other processes, the network and the machine (issue 12):
sibling sandboxes, the engine that runs the step, processes left behind, fork and memory
bombs, the Prefect API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
from sandbox_calls import processes_named, run, run_in_engine

from flowdeck.errors import StepError
from flowdeck.runtime.sandbox import host
from flowdeck.runtime.steps.code import run_code

# The attack of the issue: stop the idle pooled sandboxes, forge their reply on their
# reply pipe (fd 3), and leave a watcher that kills them once the engine has handed one a call.
FORGE_SIBLINGS = """
import os, signal, time
def run(ctx):
    me = {os.getpid(), os.getppid()}
    forged = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        pid = int(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"child.py" not in f.read() or pid in me:
                    continue
            os.kill(pid, signal.SIGSTOP)
            with open(f"/proc/{pid}/fd/3", "w") as reply:
                reply.write('{"value": "forged", "logs": ""}')
            forged.append(pid)
        except OSError:
            pass
    if forged and os.fork() == 0:
        os.setsid()
        time.sleep(1.5)
        for pid in forged:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)
    return forged
"""


def test_a_step_cannot_see_stop_or_forge_sibling_sandboxes() -> None:
    host.warm_up()
    time.sleep(1.0)  # the pool's idle sandboxes are up
    assert run(FORGE_SIBLINGS) == []
    victim = "def run(ctx):\n    return {'card_last4': ctx['input']['card'][-4:]}\n"
    assert run(victim, {"input": {"card": "4111111111111111"}}) == {"card_last4": "1111"}


def test_killing_its_parent_does_not_kill_the_engine() -> None:
    source = """
    import os, signal
    def run(ctx):
        os.kill(os.getppid(), signal.SIGKILL)
        return "parent killed"
    """
    status, outcome = run_in_engine(source)
    assert status == 0, "the engine process was killed by the code step"
    # its parent is the sandbox's init, which the kernel does not let it kill
    assert outcome is not None and outcome.get("value") == "parent killed", outcome


@pytest.mark.parametrize("how", ["setsid", "plain"])
def test_no_process_the_step_started_outlives_it(how: str) -> None:
    marker = f"31.{1000 + len(how)}"
    source = f"""
    import os, subprocess
    def run(ctx):
        subprocess.Popen(["sleep", "{marker}"], start_new_session={how == "setsid"},
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return "returned normally"
    """
    assert run(source) == "returned normally"
    deadline = time.monotonic() + 3
    while processes_named(marker.encode()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(marker.encode()) == []


def test_a_fork_bomb_is_stopped_by_the_process_limit() -> None:
    source = """
    import os
    def run(ctx):
        started = 0
        for _ in range(300):
            try:
                if os.fork() == 0:
                    os.execvp("sleep", ["sleep", "33.301"])
                started += 1
            except OSError:
                break
        return started
    """
    try:
        started = run(source, timeout=20)
    except StepError:
        started = 0  # the step failed as a whole: also stopped
    assert started < host.MAX_PROCESSES
    deadline = time.monotonic() + 3
    while processes_named(b"33.301") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(b"33.301") == []


def test_memory_is_limited_for_the_whole_process_tree() -> None:
    source = """
    import os
    def run(ctx):
        children = []
        for _ in range(8):
            pid = os.fork()
            if pid == 0:
                hoard = b"x" * (200 * 1024 * 1024)  # written, so really resident
                os.write(1, b"")
                import time; time.sleep(2)
                os._exit(0 if hoard else 1)
            children.append(pid)
        ok = 0
        for pid in children:
            _, status = os.waitpid(pid, 0)
            ok += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        return ok
    """
    try:
        survivors = run(source, memory_mb=256, timeout=30)
    except StepError as error:
        assert "memory" in error.message
        return
    assert survivors <= 1, f"{survivors} children of 200 MB each ran under memory_mb: 256"


@pytest.fixture
def local_service() -> Iterator[int]:
    """A TCP service on 127.0.0.1 (as the Prefect API is), counting connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()
    assert accepted == [], "a code step reached a service on 127.0.0.1"


def test_no_route_to_services_on_localhost(local_service: int) -> None:
    source = """
    import socket
    def run(ctx):
        outcome = {}
        for host in ("127.0.0.1", "localhost", "::1"):
            try:
                socket.create_connection((host, ctx["port"]), timeout=2).close()
                outcome[host] = "connected"
            except OSError as error:
                outcome[host] = type(error).__name__
        return outcome
    """
    outcome = run(source, {"port": local_service})
    assert "connected" not in outcome.values(), outcome


def test_concurrent_steps_cannot_see_each_other() -> None:
    probe = """
    import os, time
    def run(ctx):
        time.sleep(0.5)
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    """

    async def both() -> list[list[int]]:
        calls = (run_code(textwrap.dedent(probe), {}, timeout=10, memory_mb=128) for _ in range(3))
        return await asyncio.gather(*calls)

    for pids in asyncio.run(both()):
        assert len(pids) <= 3, pids  # the sandbox's init, the code (and its `ls` of /proc)
