"""The long-lived local Prefect server flowdeck runs when PREFECT_API_URL is unset.

Prefect's own fallback, an ephemeral server started inside every process, costs 4-11 s per
command and fights over SQLite; instead flowdeck starts one `prefect server start` detached,
with its state under FLOWDECK_HOME, on first need, and every later process reuses it.

Nothing here imports prefect: the environment must be settled before prefect is imported,
because Prefect reads its settings at import time.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from flows import daemons, settings
from flows.errors import PrefectUnavailable

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerStatus:
    api_url: str
    managed: bool  # started by flowdeck (False: PREFECT_API_URL points elsewhere)
    healthy: bool
    pid: int | None = None
    database: str | None = None


def local_api_url() -> str:
    return f"http://127.0.0.1:{settings.server_port()}/api"


def _pid_file() -> Path:
    return settings.home() / "server.pid"


def _log_file() -> Path:
    return settings.home() / "server.log"


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def configure_environment() -> str:
    """Point this process (and its children) at a Prefect API, starting the local server
    when none is configured. Returns the API URL. Call before importing prefect."""
    base_environment()
    external = settings.external_api_url()
    if external:
        return external
    api_url = local_api_url()
    if not is_healthy(api_url, timeout=1.0):
        start()
    os.environ["PREFECT_API_URL"] = api_url
    return api_url


def base_environment() -> None:
    """Settings every flowdeck process shares, whichever server it talks to."""
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home()))
    # Prefect's console handler would draw into the TUI and clutter JSON output; runs still
    # ship their logs to the Prefect API.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_CLI_PROMPT", "false")
    # Never Prefect's per-process ephemeral server: fail loudly if the API is not set.
    os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"


@contextmanager
def _start_lock() -> Iterator[None]:
    """Several processes may need the server at once: only one starts it."""
    settings.home().mkdir(parents=True, exist_ok=True)
    with open(settings.home() / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(database_url: str | None = None) -> ServerStatus:
    """Start the local server detached (or find it running) and wait until it answers."""
    api_url = local_api_url()
    with _start_lock():
        if is_healthy(api_url, timeout=1.0):
            return status()
        home = settings.home()
        home.mkdir(parents=True, exist_ok=True)
        settings.prefect_home().mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env["PREFECT_HOME"] = str(settings.prefect_home())
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_UI_ENABLED"] = env.get("PREFECT_UI_ENABLED", "true")
        env.update(server_tuning())
        if database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
        log = open(_log_file(), "ab")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "prefect" if database_url else "flows.prefect_server_main",
                "server", "start", "--host", "127.0.0.1", "--port", str(settings.server_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=home,
            start_new_session=True,  # survives the command that started it
        )
        _pid_file().write_text(str(process.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PrefectUnavailable(
                    f"the local Prefect server exited with code {process.returncode}; "
                    f"see {_log_file()}"
                )
            if is_healthy(api_url, timeout=1.0):
                return status()
            time.sleep(0.2)
        raise PrefectUnavailable(
            f"the local Prefect server did not answer at {api_url} within "
            f"{START_TIMEOUT:.0f} s; see {_log_file()}"
        )


def server_tuning() -> dict[str, str]:
    """Server settings for a flowdeck workload (many short runs, few humans).

    The services flowdeck does not rely on poll the database and compete with run writes
    for SQLite's single writer; turning them off cuts "database is locked" retries.
    """
    return {
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
    }


def stop(timeout: float = 20.0) -> bool:
    """Stop the server flowdeck started. Returns False when none was running."""
    return daemons.stop(_pid_file(), timeout)


def status() -> ServerStatus:
    external = settings.external_api_url()
    if external and external != local_api_url():
        return ServerStatus(api_url=external, managed=False, healthy=is_healthy(external))
    pid = daemons.read_pid(_pid_file())
    api_url = local_api_url()
    return ServerStatus(
        api_url=api_url,
        managed=True,
        healthy=is_healthy(api_url),
        pid=pid if pid is not None and daemons.alive(pid) else None,
        database=str(settings.prefect_home() / "prefect.db"),
    )
