"""Processes when Prefect is unreachable (issue 12: `PREFECT_API_URL` at a closed port made
`flowdeck worker` hang silently for 779 s and ignore SIGTERM and SIGINT).

Every command says so within seconds, with the URL and what to do, and the worker stops on
SIGTERM or SIGINT at any point of its start. No Prefect server is needed: the point is
that there is none.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import run_cli
from support.paths import ROOT

from flowdeck.local.spawn import free_port

# Real processes and seconds of waiting (and, for the server tests, real Prefect servers):
# not the fast layer.
pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
CLEAR_ERROR_WITHIN = 20.0  # seconds; the client gives an unreachable server 5 s
STOPS_WITHIN = 2.0  # seconds after the signal


def closed_port_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",  # nobody listens there
        "FLOWDECK_HOME": str(tmp_path / "home"),
        "FLOWDECK_DEFINITIONS": str(DEFINITIONS),
    }


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["executions"],
        ["status", "exec_0123456789abcdef0123456789abcdef"],
        ["cancel", "exec_0123456789abcdef0123456789abcdef"],
        ["deploy"],
    ],
    ids=lambda command: command[0],
)
def test_a_command_says_prefect_is_unreachable_within_seconds(tmp_path: Path, command: list[str]) -> None:
    env = closed_port_env(tmp_path)
    started = time.monotonic()
    result = run_cli(*command, env=env, timeout=CLEAR_ERROR_WITHIN + 40)
    took = time.monotonic() - started
    assert took < CLEAR_ERROR_WITHIN, f"{command} took {took:.1f} s"
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"cannot reach the Prefect API at {env['PREFECT_API_URL']}" in result.stderr
    assert "Traceback" not in result.stderr


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowdeck", "worker"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("after", [0.3, 3.0], ids=["while-importing", "while-connecting"])
def test_the_worker_stops_on_a_signal_during_its_start(tmp_path: Path, signum: int, after: float) -> None:
    worker = start_worker(closed_port_env(tmp_path))
    try:
        time.sleep(after)
        assert worker.poll() is None, "the worker ended before the signal: nothing was tested"
        sent = time.monotonic()
        worker.send_signal(signum)
        worker.wait(timeout=STOPS_WITHIN + 10)
        took = time.monotonic() - sent
        stderr = worker.stderr.read() if worker.stderr else ""
        assert took < STOPS_WITHIN, f"stopped {took:.2f} s after the signal"
        assert "Traceback" not in stderr, stderr
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
