"""`flowdeck server status` / `stop` know the server by more than its pid file (issue 12: a
pid file naming another process was reported as the server and that process group got
the SIGTERM; with no pid file `status` said up and `stop` said nothing was running).

Each test has its own FLOWDECK_HOME and port, never the suite's server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli

from flowdeck.local.daemons import alive
from flowdeck.local.spawn import answers, free_port

# Real processes and seconds of waiting (and, for the server tests, real Prefect servers):
# not the fast layer.
pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    # PREFECT_API_URL empty: the local server of this home, not the suite's
    return {"FLOWDECK_HOME": str(tmp_path / "home"), "FLOWDECK_SERVER_PORT": str(free_port()), "PREFECT_API_URL": ""}


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not the server, in a session of its own (as a server would be)."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def server(home: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("server", *args, env=home, timeout=120)


def status(home: dict[str, str]) -> dict[str, Any]:
    shown = server(home, "status", "--json")
    assert "Traceback" not in shown.stderr
    return dict(json.loads(shown.stdout))


def start(home: dict[str, str]) -> int:
    started = server(home, "start")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = status(home)["pid"]
    assert isinstance(pid, int)
    return pid


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), f"pid {pid} still runs"


def test_a_pid_file_naming_another_process_is_neither_reported_nor_signalled(
    home: dict[str, str], bystander: subprocess.Popen[bytes]
) -> None:
    real = start(home)
    pid_file = Path(home["FLOWDECK_HOME"]) / "server.pid"
    pid_file.write_text(str(bystander.pid))
    shown = status(home)
    assert shown["healthy"] and shown["pid"] == real  # found by its port and command line
    stopped = server(home, "stop")
    assert stopped.returncode == 0 and f"pid {real}" in stopped.stdout, stopped.stdout + stopped.stderr
    wait_gone(real)
    assert bystander.poll() is None, "the process the pid file named was signalled"
    assert status(home)["healthy"] is False


def test_without_a_pid_file_status_and_stop_agree(home: dict[str, str]) -> None:
    real = start(home)
    (Path(home["FLOWDECK_HOME"]) / "server.pid").unlink()
    shown = status(home)
    assert shown["healthy"] and shown["pid"] == real
    stopped = server(home, "stop")
    assert f"stopped the local Prefect server (pid {real})" in stopped.stdout, stopped.stdout + stopped.stderr
    wait_gone(real)
    down = server(home, "status")
    assert down.returncode == 1 and "down" in down.stdout
    assert "no local server was running" in server(home, "stop").stdout


def test_another_program_on_the_port_is_not_taken_for_the_server(
    home: dict[str, str], tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """Something else answers /api/health on the port: `status` says whose it is, `stop`
    leaves it (and the process the pid file names) alone."""
    served = tmp_path / "served"
    (served / "api").mkdir(parents=True)
    (served / "api" / "health").write_text("true")
    port = home["FLOWDECK_SERVER_PORT"]
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"],
        cwd=served,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not answers(f"http://127.0.0.1:{port}/api/health") and time.monotonic() < deadline:
            time.sleep(0.1)
        home_dir = Path(home["FLOWDECK_HOME"])
        home_dir.mkdir(parents=True)
        (home_dir / "server.pid").write_text(str(bystander.pid))
        shown = status(home)
        assert shown["pid"] is None and shown["foreign"] and f"pid {other.pid}" in shown["foreign"]
        text = " ".join(server(home, "status").stdout.split())
        assert "not flowdeck's server" in text
        refused = server(home, "start")
        assert refused.returncode == 3 and "not from flowdeck's server" in " ".join(refused.stderr.split())
        stopped = server(home, "stop")
        assert "left alone" in " ".join(stopped.stdout.split()), stopped.stdout
        time.sleep(0.5)
        assert other.poll() is None and bystander.poll() is None
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait(timeout=10)


def test_a_stale_pid_file_reports_down_and_stops_nothing(home: dict[str, str]) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    home_dir = Path(home["FLOWDECK_HOME"])
    home_dir.mkdir(parents=True)
    (home_dir / "server.pid").write_text(str(gone.pid))
    shown = status(home)
    assert shown["healthy"] is False and shown["pid"] is None
    assert "no local server was running" in server(home, "stop").stdout
