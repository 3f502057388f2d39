"""Helpers of the sandbox attack tests: run a code step here, or in a separate engine process
(for attacks on the engine itself: killing it, or making it hold a flood of output)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

from flowdeck.runtime.steps.code import run_code

__all__ = ["run", "run_in_engine", "processes_named"]

# The engine process of `run_in_engine`: one code step, then its own peak memory, as JSON.
_ENGINE = """
import asyncio, json, sys
from flowdeck.errors import StepError
from flowdeck.runtime.steps.code import run_code
call = json.loads(sys.stdin.read())
try:
    value = asyncio.run(run_code(call["code"], call["ctx"], timeout=call["timeout"], memory_mb=call["memory_mb"],
                                 on_logs=lambda logs: None))
    outcome = {"value": value}
except StepError as error:
    outcome = {"error": error.message}
outcome["value_bytes"] = len(json.dumps(outcome.get("value")))
# VmHWM, not ru_maxrss: ru_maxrss keeps the peak of the process that forked this one (pytest)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
outcome["engine_max_rss_mb"] = peak_kb / 1024
print(json.dumps(outcome))
"""


def run(source: str, ctx: dict[str, Any] | None = None, *, timeout: float = 10.0, memory_mb: int = 256) -> Any:
    """The result of a code step run by this test process."""
    return asyncio.run(
        run_code(textwrap.dedent(source), ctx or {}, timeout=timeout, memory_mb=memory_mb, on_logs=lambda logs: None)
    )


def run_in_engine(
    source: str, ctx: dict[str, Any] | None = None, *, timeout: float = 20.0, memory_mb: int = 256
) -> tuple[int, dict[str, Any] | None]:
    """Run one code step in a fresh engine process: (its exit status, its outcome or None)."""
    call = {"code": textwrap.dedent(source), "ctx": ctx or {}, "timeout": timeout, "memory_mb": memory_mb}
    done = subprocess.run(
        [sys.executable, "-c", _ENGINE],
        input=json.dumps(call),
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env=dict(os.environ),
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode, (json.loads(lines[-1]) if done.returncode == 0 and lines else None)


def processes_named(marker: bytes) -> list[int]:
    """Live processes on this machine whose command line contains `marker`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read()
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in argv and state != "Z" and int(entry) != os.getpid():
            found.append(int(entry))
    return found
