"""The long-lived local Prefect server flowdeck runs when PREFECT_API_URL is unset.

Prefect's own fallback, an ephemeral server started inside every process, costs 4-11 s per
command and fights over SQLite; instead flowdeck starts one `prefect server start` detached,
with its state under FLOWDECK_HOME, on first need, and every later process reuses it.

The server runs with Prefect's own API authentication: a generated credential
(flowdeck.local.credentials, `$FLOWDECK_HOME/prefect_auth`, mode 0600) is its
PREFECT_SERVER_API_AUTH_STRING, and `base_environment()` hands it to flowdeck's own
processes as PREFECT_API_AUTH_STRING. A process without it gets 401 from every endpoint
but the health checks (and the UI asks for it as its password).

The server is recognised by its command line, its directory and its port
(flowdeck.local.daemons), never by its pid file alone: `status` and `stop` find the same
process, and only that process is signalled.

Nothing here imports prefect: the environment must be settled before prefect is imported,
because Prefect reads its settings at import time.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from flowdeck import settings
from flowdeck.errors import ConfigurationError, PrefectUnavailable
from flowdeck.local import credentials, daemons, spawn

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerStatus:
    api_url: str
    managed: bool  # started by flowdeck (False: PREFECT_API_URL points elsewhere)
    healthy: bool
    pid: int | None = None
    database: str | None = None
    # managed: the local port answers, but not from the server flowdeck started (who holds it)
    foreign: str | None = None
    # managed: the file holding the credential, and whether the server asks for it (None:
    # not known, the server is down)
    credential_file: str | None = None
    authenticated: bool | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def local_api_url() -> str:
    return f"http://127.0.0.1:{settings.server_port()}/api"


def _pid_file() -> Path:
    return settings.home() / "server.pid"


def _log_file() -> Path:
    return settings.home() / "server.log"


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    return spawn.answers(f"{api_url}/health", timeout)


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


def uses_local_server() -> bool:
    """This process talks to the server flowdeck runs (PREFECT_API_URL unset, or set to it)."""
    external = settings.external_api_url()
    return external is None or external.rstrip("/") == local_api_url()


def base_environment() -> None:
    """Settings every flowdeck process shares, whichever server it talks to; for the local
    server, its credential (children inherit it: the worker, API and dashboard flowdeck
    starts). With PREFECT_API_URL elsewhere, PREFECT_API_AUTH_STRING is the operator's."""
    if uses_local_server():
        os.environ["PREFECT_API_AUTH_STRING"] = credentials.prefect_auth_string()
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home()))
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    # Prefect drains its event queue at exit (block loads emit events) and says so as a
    # warning: noise on a command's stderr, not a problem.
    for name in ("EventsWorker", "APILogWorker"):
        logging.getLogger(name).setLevel(logging.ERROR)
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
    try:
        settings.home().mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"cannot create FLOWDECK_HOME {settings.home()}: {error.strerror}; point FLOWDECK_HOME at a directory"
        ) from None
    with open(settings.home() / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Topology:
    """How the local server runs: its database, its messaging, how many API processes.

    The default is the embedded one (SQLite, in-memory messaging, one process running the
    API and Prefect's services). With PostgreSQL and Redis, `api_processes` > 1 runs
    Prefect's own multi-process server (`prefect server start --workers N`, API only) plus
    one `prefect server services start` process: Prefect's distributed setup, on one machine.
    """

    database_url: str | None = None
    redis_url: str | None = None
    api_processes: int = 1

    @classmethod
    def from_env(cls) -> Topology:
        return cls(settings.database_url(), settings.redis_url(), settings.api_processes())

    @classmethod
    def remembered(cls) -> Topology:
        """The topology the server was last started with (so a server that died comes back
        on the same database), else the environment's."""
        try:
            saved = json.loads(_topology_file().read_text())
            return cls(saved.get("database_url"), saved.get("redis_url"), int(saved.get("api_processes", 1)))
        except (OSError, ValueError):
            return cls.from_env()

    def remember(self) -> None:
        path = _topology_file()
        path.write_text(json.dumps(self.__dict__))
        path.chmod(0o600)  # the database URL may carry a password

    def problems(self) -> list[str]:
        found = []
        if self.api_processes < 1:
            found.append("--api-processes must be at least 1")
        if self.database_url and not self.database_url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            found.append(
                f"--database {self.database_url!r} is not a URL Prefect can use: "
                "give postgresql+asyncpg://USER@HOST:PORT/DATABASE"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://")):
            found.append(f"--redis {self.redis_url!r} is not a Redis URL: give redis://HOST:PORT/DB")
        if self.api_processes > 1 and not (self.database_url or "").startswith("postgresql"):
            found.append("--api-processes > 1 needs PostgreSQL (--database postgresql+asyncpg://...)")
        if self.api_processes > 1 and not self.redis_url:
            found.append("--api-processes > 1 needs Redis for Prefect's messaging (--redis redis://HOST:6379/0)")
        return found

    def environment(self) -> dict[str, str]:
        """Prefect's own settings for this topology (what a server process needs)."""
        env: dict[str, str] = {}
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        if self.redis_url:
            env.update(redis_messaging_environment(self.redis_url))
        return env


def redis_messaging_environment(redis_url: str) -> dict[str, str]:
    """Prefect's settings that move its event bus, caches and leases to Redis (prefect-redis),
    so several server processes share them."""
    return {
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_URL": redis_url,
    }


def _topology_file() -> Path:
    return settings.home() / "server.json"


def _services_pid_file() -> Path:
    return settings.home() / "server-services.pid"


def _spawn(command: list[str], env: dict[str, str], pid_file: Path) -> spawn.Spawned:
    return spawn.spawn(spawn.python_module(*command), _log_file(), env=env, cwd=settings.home(), pid_file=pid_file)


def _run_once(arguments: list[str], env: dict[str, str], failure: str) -> None:
    """A one-off Prefect step before the server processes start; its last error line if it fails."""
    done = subprocess.run(
        [sys.executable, *arguments],
        env=env,
        cwd=settings.home(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise PrefectUnavailable(f"{failure}: " + (done.stderr or done.stdout).strip().splitlines()[-1][:300])


def _migrate(env: dict[str, str]) -> None:
    _run_once(
        ["-m", "prefect", "server", "database", "upgrade", "-y"], env, "could not bring the Prefect database up to date"
    )


_REGISTER_BLOCKS = """
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration

async def main():
    session = await provide_database_interface().session()
    async with session:
        await run_block_auto_registration(session=session)
        await session.commit()

asyncio.run(main())
"""


def _register_blocks(env: dict[str, str]) -> None:
    """Register Prefect's block types once. Each API process does it at startup otherwise, and
    on a fresh database two of them collide (a unique-key violation): the one that loses
    fails its startup, and uvicorn then stops the whole server moments after it answered."""
    _run_once(["-c", _REGISTER_BLOCKS], env, "could not register Prefect's block types")


def start(topology: Topology | None = None) -> ServerStatus:
    """Start the local server detached (or find it running) and wait until it answers."""
    if topology is None:
        # Explicit environment wins; else the server comes back as it was last started.
        topology = Topology.from_env() if settings.database_url() else Topology.remembered()
    problems = topology.problems()
    if problems:
        raise ConfigurationError("; ".join(problems))
    try:
        nice = settings.server_nice()
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    api_url = local_api_url()
    with _start_lock():
        if is_healthy(api_url, timeout=1.0):
            return status()
        home = settings.home()
        home.mkdir(parents=True, exist_ok=True)
        settings.prefect_home().mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env["PREFECT_HOME"] = str(settings.prefect_home())
        # The server asks every request for it; its own internal clients send it too.
        env["PREFECT_SERVER_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"] = credentials.prefect_auth_string()
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_UI_ENABLED"] = env.get("PREFECT_UI_ENABLED", "true")
        # The UI's calls go to this server (Prefect's default is port 4200, whatever --port says).
        env["PREFECT_UI_API_URL"] = api_url
        env.update({k: v for k, v in server_tuning(topology.database_url is None).items() if k not in os.environ})
        env.update(topology.environment())
        topology.remember()
        address = ["--host", "127.0.0.1", "--port", str(settings.server_port())]
        if topology.database_url is None:
            command = ["flowdeck.local.prefect_server_main", "server", "start", *address]
        elif topology.api_processes == 1:
            command = ["prefect", "server", "start", *address]
        else:
            command = ["prefect", "server", "start", *address, "--workers", str(topology.api_processes)]
        services = None
        if topology.api_processes > 1:
            # Several processes would each run the migrations at once and collide; run them
            # once first (Prefect's own command), and not again in each process.
            _migrate(env)
            env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
            _register_blocks(env)
            env["PREFECT_SERVER_REGISTER_BLOCKS_ON_START"] = "false"
            # The API processes run no services; Prefect's scheduler, event persister,
            # task-run recorder and the rest run once, here.
            services = _spawn(["prefect", "server", "services", "start"], env, _services_pid_file())
        process = _spawn(command, env, _pid_file())
        for started in filter(None, (services, process)):
            lower_priority(started.pid, nice)
        try:
            process.wait_ready(
                lambda: is_healthy(api_url, timeout=1.0), START_TIMEOUT, interval=0.2, also=filter(None, (services,))
            )
        except spawn.StartError as error:
            # not `stop()`: a server that never listened is not recognised by its port
            for started in filter(None, (services, process)):
                daemons.terminate_group(started.pid)
            _pid_file().unlink(missing_ok=True)
            _services_pid_file().unlink(missing_ok=True)
            if error.returncode is not None:
                raise PrefectUnavailable(
                    f"the local Prefect server exited with code {error.returncode}; see {_log_file()}"
                ) from None
            raise PrefectUnavailable(
                f"the local Prefect server did not answer at {api_url} within {START_TIMEOUT:.0f} s; see {_log_file()}"
            ) from None
        return status()


def lower_priority(pid: int, nice: int) -> None:
    """Give the server's process `nice` (0: leave it). The server leads a session of its own,
    hence (with the kernel's autogroup scheduling, on by default) a scheduling group of its
    own, and a process's nice value only ranks it within its group: the group's niceness
    (/proc/PID/autogroup) is what ranks it against the callers' sessions, so both are set."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        return  # gone already: wait_ready says why
    autogroup = Path(f"/proc/{pid}/autogroup")
    try:
        autogroup.write_text(str(nice))
    except OSError:
        pass  # no autogroup (kernel without it, or a container that hides it): nice alone


def server_tuning(embedded: bool = True) -> dict[str, str]:
    """Server settings for a flowdeck workload (many short runs, few humans).

    The services flowdeck does not rely on poll the database and compete with run writes
    for SQLite's single writer; turning them off cuts "database is locked" retries.

    The task-run recorder writes each step's task run in a transaction of its own by
    default (batch size 1), which cost the server about as much as a flow-run state write
    per step; in batches of up to 100, flushed every 0.05 s, the cost per step is about
    half (docs/benchmarks.md, session 6): a burst's events arrive many at a time and are
    written together, and a lone task run waits at most 50 ms. Prefect's own command (the
    PostgreSQL topologies) rounds the interval down to whole seconds, and 0 would make its
    flush loop spin: 1 s there. A value the operator set in the environment is kept.
    """
    return {
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "0.05" if embedded else "1",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
    }


def _server_identity() -> daemons.Identity:
    """The local server as `start` runs it: `... server start --host 127.0.0.1 --port N` in
    FLOWDECK_HOME, listening on N."""
    port = settings.server_port()
    words = ("server", "start", "--host", "127.0.0.1", "--port", str(port))
    return daemons.Identity(argv=words, cwd=settings.home(), port=port)


def _services_identity() -> daemons.Identity:
    return daemons.Identity(argv=("prefect", "server", "services", "start"), cwd=settings.home())


def server_pid() -> int | None:
    """The server flowdeck started for this FLOWDECK_HOME and port, found by its pid file or
    its port; None when it does not run (whatever the pid file says)."""
    return daemons.find(_pid_file(), _server_identity())


def stop(timeout: float = 20.0) -> bool:
    """Stop the server `status` reports (and its services process). False when none was
    running; a process that is not that server is never signalled."""
    stopped = False
    for pid_file, identity in ((_services_pid_file(), _services_identity()), (_pid_file(), _server_identity())):
        pid = daemons.find(pid_file, identity)
        if pid is not None:
            daemons.stop(pid, timeout)
            stopped = True
        pid_file.unlink(missing_ok=True)
    return stopped


def status() -> ServerStatus:
    if not uses_local_server():
        external = settings.external_api_url() or ""
        return ServerStatus(api_url=external, managed=False, healthy=is_healthy(external))
    api_url = local_api_url()
    healthy = is_healthy(api_url)
    pid = server_pid()
    return ServerStatus(
        api_url=api_url,
        managed=True,
        healthy=healthy,
        pid=pid,
        database=_redacted(Topology.remembered().database_url) or str(settings.prefect_home() / "prefect.db"),
        foreign=_holder(settings.server_port()) if healthy and pid is None else None,
        credential_file=str(credentials.prefect_auth_file()),
        authenticated=_asks_for_credential(api_url) if healthy else None,
    )


def _holder(port: int) -> str:
    """Who answers on the local port when it is not flowdeck's server."""
    return daemons.describe_listener(port) or f"a process flowdeck cannot see (not started from {settings.home()})"


def _asks_for_credential(api_url: str) -> bool:
    """The server refuses a request that carries no credential (a server started before
    flowdeck had one answers it: restart it)."""
    try:
        return httpx.post(f"{api_url}/flow_runs/count", json={}, timeout=2.0).status_code == 401
    except httpx.HTTPError:
        return False


def _redacted(url: str | None) -> str | None:
    """A database URL without its password, for status output."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"
