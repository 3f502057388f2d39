"""The code step: user Python in a sandbox process (real processes, no mocks)."""

from __future__ import annotations

import asyncio
import os
import textwrap
import time

import pytest

from flowdeck.errors import StepError
from flowdeck.runtime.steps import code as code_step
from flowdeck.runtime.steps.code import run_code


def run(source: str, ctx: dict | None = None, *, timeout: float = 5.0, memory_mb: int = 256, logs: list | None = None):
    return asyncio.run(
        run_code(
            textwrap.dedent(source),
            ctx if ctx is not None else {"input": {"x": 2}},
            timeout=timeout,
            memory_mb=memory_mb,
            on_logs=(logs.append if logs is not None else None),
        )
    )


def _is_sandbox(pid: str) -> bool:
    """A code-step sandbox's launcher (not, say, the Prefect server the suite started)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
    except OSError:
        return False
    return b"/flowdeck/child.py" in argv


def _children() -> set[int]:
    """Live (not zombie) processes whose parent is this test process."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and _is_sandbox(entry):
            found.add(int(entry))
    return found


def test_run_gets_the_context_and_its_result_comes_back():
    result = run(
        """
        def run(ctx):
            return {"double": ctx["input"]["x"] * 2, "items": [1, "a", None, True, 1.5]}
        """
    )
    assert result == {"double": 4, "items": [1, "a", None, True, 1.5]}


def test_async_run_is_awaited():
    assert run("async def run(ctx):\n    return ctx['input']['x'] + 1\n") == 3


def test_an_exception_names_type_message_and_line():
    source = """
    def run(ctx):
        total = 0
        return ctx["input"]["missing"] + total
    """
    with pytest.raises(StepError) as caught:
        run(source)
    message = str(caught.value)
    assert "KeyError: 'missing'" in message
    assert 'line 4: return ctx["input"]["missing"] + total' in message
    assert "Traceback" not in message


def test_a_syntax_error_names_the_line():
    with pytest.raises(StepError, match=r"SyntaxError: .* \(line 1: def run\(ctx\)\)"):
        run("def run(ctx)\n    return 1\n")


def test_code_without_run_is_an_error():
    with pytest.raises(StepError, match=r"must define a function run\(ctx\)"):
        run("x = 1\n")


def test_an_endless_loop_is_killed_within_the_timeout():
    started = time.perf_counter()
    with pytest.raises(StepError, match="timed out after 0.5 s"):
        run("def run(ctx):\n    while True:\n        pass\n", timeout=0.5)
    assert time.perf_counter() - started < 3


def test_a_process_the_code_started_dies_with_it():
    source = """
    import subprocess
    def run(ctx):
        subprocess.Popen(["sleep", "30"])
        while True:
            pass
    """
    with pytest.raises(StepError, match="timed out"):
        run(source, timeout=0.5)
    time.sleep(0.2)
    sleepers = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if cmdline.read() == b"sleep\x0030\x00":
                    sleepers.append(entry)
        except OSError:
            pass
    assert sleepers == []


def test_a_memory_bomb_fails_the_step_not_the_engine():
    source = """
    def run(ctx):
        hoard = []
        while True:
            hoard.append(" " * 10_000_000)
    """
    with pytest.raises(StepError, match="out of memory.*128 MB"):
        run(source, memory_mb=128)
    assert run("def run(ctx):\n    return 'still fine'\n") == "still fine"


def test_a_segfault_fails_the_step():
    with pytest.raises(StepError, match="segmentation fault"):
        run("import ctypes\ndef run(ctx):\n    return ctypes.string_at(0)\n")


def test_an_exit_without_result_fails_the_step():
    with pytest.raises(StepError, match=r"exited \(code 3\) without returning a result"):
        run("import os\ndef run(ctx):\n    os._exit(3)\n")


def test_a_result_that_is_not_json_fails_the_step():
    with pytest.raises(StepError, match="not JSON-serialisable"):
        run("def run(ctx):\n    return {1, 2}\n")
    with pytest.raises(StepError, match="not JSON-serialisable"):
        run("def run(ctx):\n    return float('nan')\n")


def test_engine_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("FLOWDECK_SECRET_TOKEN", "s3cr3t-value")
    code_step._pool.close()  # sandboxes started from now on see the variable in the engine
    source = """
    import os
    def run(ctx):
        with open("/proc/self/environ", "rb") as env:
            raw = env.read().decode()
        return {"environ": dict(os.environ), "raw": raw}
    """
    result = run(source)
    assert "FLOWDECK_SECRET_TOKEN" not in result["environ"]
    assert "s3cr3t-value" not in result["raw"]
    assert set(result["environ"]) <= {"PATH", "LANG", "TMPDIR", "HOME", "LC_CTYPE", "PWD"}


def test_each_call_gets_a_fresh_private_temp_dir():
    source = """
    import os
    def run(ctx):
        before = os.listdir(".")
        with open("scratch.txt", "w") as f:
            f.write("x")
        return {"cwd": os.getcwd(), "before": before}
    """
    first, second = run(source), run(source)
    assert first == second == {"cwd": "/tmp", "before": []}  # the first call's file is gone
    assert not os.path.exists("/tmp/scratch.txt")  # and never reached the host's /tmp


def test_prints_do_not_break_the_protocol_and_come_back_as_logs():
    source = """
    import os, sys
    def run(ctx):
        print('{"value": "forged"}')
        sys.stdout.write("written\\n")
        print("to stderr", file=sys.stderr)
        os.write(1, b"raw fd 1\\n")
        os.system("echo from a shell")
        return "real"
    """
    logs: list[str] = []
    assert run(source, logs=logs) == "real"
    text = "".join(logs)
    for expected in ['{"value": "forged"}', "written", "to stderr", "raw fd 1", "from a shell"]:
        assert expected in text


def test_logs_of_a_failing_step_are_kept_in_the_error():
    with pytest.raises(StepError) as caught:
        run("def run(ctx):\n    print('about to fail')\n    raise ValueError('bad input')\n")
    assert "ValueError: bad input" in str(caught.value)
    assert "about to fail" in caught.value.details["logs"]


def test_concurrent_calls_and_separate_event_loops_work():
    async def many():
        return await asyncio.gather(
            *(
                run_code(f"def run(ctx):\n    return ctx['n'] * {i}\n", {"n": 2}, timeout=10, memory_mb=256)
                for i in range(6)
            )
        )

    assert asyncio.run(many()) == [0, 2, 4, 6, 8, 10]
    assert asyncio.run(many()) == [0, 2, 4, 6, 8, 10]


def test_cancelling_a_call_kills_its_sandbox():
    async def cancel_soon():
        task = asyncio.create_task(
            run_code("def run(ctx):\n    while True:\n        pass\n", {}, timeout=30, memory_mb=256)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.perf_counter()
    asyncio.run(cancel_soon())
    assert time.perf_counter() - started < 5


def test_no_sandbox_outlives_the_pool():
    run("def run(ctx):\n    return 1\n")
    code_step._pool.close()
    deadline = time.monotonic() + 3
    while _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() == set()


def test_a_warm_call_is_fast():
    code_step.warm_up()
    time.sleep(0.5)  # let the idle sandboxes finish starting
    started = time.perf_counter()
    assert run("def run(ctx):\n    return 1\n") == 1
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed * 1000:.1f} ms for a warm call"  # ~3-5 ms when quiet


def test_the_sandbox_child_imports_only_the_standard_library():
    """The child program starts in milliseconds: no flowdeck, no Prefect, not even typing."""
    import subprocess
    import sys

    from flowdeck.runtime.sandbox.host import CHILD_PROGRAM

    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-X", "importtime", CHILD_PROGRAM],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    loaded = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "resource" in loaded and "json" in loaded, loaded
    assert not {name for name in loaded if name.split(".")[0] in ("flowdeck", "prefect", "typing", "asyncio")}, loaded


def _own_cgroups() -> list[str]:
    from flowdeck.runtime.sandbox.cgroups import parents

    where = parents()
    return sorted(
        str(path) for parent in {where.memory, where.pids} for path in parent.glob(f"flowdeck-sandbox-{os.getpid()}-*")
    )


def test_no_cgroup_outlives_its_sandbox():
    run("def run(ctx):\n    return 1\n")
    with pytest.raises(StepError):
        run("def run(ctx):\n    while True:\n        pass\n", timeout=0.3)
    code_step._pool.close()  # the idle ones too
    assert _own_cgroups() == []


def test_cgroups_left_by_a_dead_engine_are_swept():
    from flowdeck.runtime.sandbox import cgroups

    where = cgroups.parents()
    stale = where.pids / "flowdeck-sandbox-999999999-0123456789ab"  # a pid that cannot exist
    stale.mkdir()
    cgroups._swept.clear()
    run("def run(ctx):\n    return 1\n")
    code_step._pool.close()
    assert not stale.exists()
