"""The background services one `flowdeck` command needs on a fresh machine: the local Prefect
server (flowdeck.local.prefect_server) and one `flowdeck worker` for async executions.

Both run detached (own session, log file and pid file under FLOWDECK_HOME) so they outlive
the command that started them and are reused by the next one. Only used when
PREFECT_API_URL is unset: with an external Prefect, workers are the operator's business.

    ensure()  start what is missing; returns which services this call started
    stop()    stop the worker (and the server with `server=True`)
    status()  what runs now

Nothing here imports prefect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from flowdeck import settings
from flowdeck.errors import PrefectUnavailable
from flowdeck.local import daemons, prefect_server, spawn

__all__ = ["Services", "WorkerStatus", "ensure", "stop", "stop_worker", "status", "worker_status"]

WORKER_START_TIMEOUT = 90.0


@dataclass(frozen=True)
class WorkerStatus:
    running: bool
    pid: int | None
    log_file: str


@dataclass
class Services:
    api_url: str
    managed: bool  # the flowdeck-managed local server (False: PREFECT_API_URL is set)
    started: list[str] = field(default_factory=list)  # "Prefect server", "worker" started now
    worker: WorkerStatus | None = None

    def describe(self) -> str:
        where = f"local Prefect {self.api_url}" if self.managed else f"Prefect {self.api_url}"
        if self.worker is not None and self.worker.running:
            where += f" · worker pid {self.worker.pid}"
        return where


def _pid_file() -> Path:
    return settings.home() / "worker.pid"


def _log_file() -> Path:
    return settings.home() / "worker.log"


# the background worker as `start_worker` runs it (a pid file naming another process is not it)
_WORKER = daemons.Identity(argv=("-m", "flowdeck", "worker"))


def worker_status() -> WorkerStatus:
    pid = daemons.find(_pid_file(), _WORKER)
    return WorkerStatus(running=pid is not None, pid=pid, log_file=str(_log_file()))


def start_worker(definitions: str | Path | None = None) -> tuple[WorkerStatus, bool]:
    """Start `python -m flowdeck worker` detached unless one runs; (status, started_now)."""
    current = worker_status()
    if current.running:
        return current, False
    home = settings.home()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if definitions is not None:
        env[settings.DEFINITIONS_VARIABLE] = str(Path(definitions).resolve())
    else:
        env[settings.DEFINITIONS_VARIABLE] = str(settings.definitions_dir().resolve())
    worker = spawn.spawn(
        spawn.flowdeck_command("worker"), _log_file(), env=env, cwd=Path.cwd(), pid_file=_pid_file()
    )  # a session of its own: survives the dashboard
    try:
        worker.wait_ready(worker.says(b"serving"), WORKER_START_TIMEOUT, interval=0.2)
    except spawn.StartError as error:
        if error.returncode is None:
            return worker_status(), True  # still starting; it keeps going in the background
        _pid_file().unlink(missing_ok=True)
        raise PrefectUnavailable(
            f"the flowdeck worker exited with code {error.returncode}; see {_log_file()}"
        ) from None
    return worker_status(), True


def stop_worker(timeout: float = 20.0) -> bool:
    """Stop the worker flowdeck started. False when none was running."""
    pid = daemons.find(_pid_file(), _WORKER)
    _pid_file().unlink(missing_ok=True)
    if pid is None:
        return False
    daemons.stop(pid, timeout)
    return True


def ensure(definitions: str | Path | None = None, *, worker: bool = True) -> Services:
    """Make sure Prefect (and, for the local server, a worker) run; reuse what runs."""
    prefect_server.base_environment()
    external = settings.external_api_url()
    if external:
        return Services(api_url=external, managed=False)
    started: list[str] = []
    api_url = prefect_server.local_api_url()
    if not prefect_server.is_healthy(api_url, timeout=1.0):
        prefect_server.start()
        started.append("Prefect server")
    os.environ["PREFECT_API_URL"] = api_url
    services = Services(api_url=api_url, managed=True, started=started)
    if worker:
        services.worker, started_now = start_worker(definitions)
        if started_now:
            started.append("worker")
    return services


def stop(*, server: bool = True) -> list[str]:
    """Stop the worker and (with `server`) the local Prefect server; says what was stopped."""
    stopped = []
    if stop_worker():
        stopped.append("worker")
    if server and prefect_server.stop():
        stopped.append("Prefect server")
    return stopped


def status() -> tuple[prefect_server.ServerStatus, WorkerStatus]:
    return prefect_server.status(), worker_status()
