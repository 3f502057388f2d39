"""Where flowdeck keeps its state and how it finds Prefect: environment variables only.

Every FLOWDECK_* variable is read here, nowhere else; docs/configuration.md lists them all.

    FLOWDECK_HOME          state of the embedded Prefect server, results, tokens (~/.flowdeck)
    FLOWDECK_DEFINITIONS   the definitions directory (./definitions)
    FLOWDECK_SYNC_TIMEOUT  the server-wide sync limit in seconds (60)
    PREFECT_API_URL        an existing Prefect API; when unset flowdeck runs its own server
    FLOWDECK_SERVER_PORT   port of the embedded Prefect server (4200)
    FLOWDECK_DATABASE_URL  database of the local server flowdeck starts (SQLite under
                           FLOWDECK_HOME when unset; postgresql+asyncpg://... for the fast path)
    FLOWDECK_REDIS_URL     Redis for the local server's messaging (prefect-redis); needed for
                           more than one API process
    FLOWDECK_SERVER_API_PROCESSES  API processes of the local server (1)
"""

from __future__ import annotations

import os
from pathlib import Path

from flowdeck.errors import ConfigurationError

DEFAULT_SERVER_PORT = 4200


def home() -> Path:
    return Path(os.environ.get("FLOWDECK_HOME") or Path.home() / ".flowdeck").expanduser()


def dashboard_inputs_file() -> Path:
    """The dashboard's last launch inputs per workflow (docs/dashboard.md)."""
    return home() / "dashboard" / "last_inputs.json"


def definitions_dir() -> Path:
    return Path(os.environ.get("FLOWDECK_DEFINITIONS") or "definitions")


def sync_timeout_default() -> float:
    return float(os.environ.get("FLOWDECK_SYNC_TIMEOUT") or 60)


def server_port() -> int:
    return int(os.environ.get("FLOWDECK_SERVER_PORT") or DEFAULT_SERVER_PORT)


def prefect_home() -> Path:
    """PREFECT_HOME of the embedded server and of every process that uses it.

    Results live under it (`storage/`), so every process on this machine reads every
    execution's output; a multi-machine setup sets a shared result storage block instead.
    """
    return home() / "prefect"


def external_api_url() -> str | None:
    return os.environ.get("PREFECT_API_URL") or None


def database_url() -> str | None:
    return os.environ.get("FLOWDECK_DATABASE_URL") or None


def redis_url() -> str | None:
    return os.environ.get("FLOWDECK_REDIS_URL") or None


def api_processes() -> int:
    return int(os.environ.get("FLOWDECK_SERVER_API_PROCESSES") or 1)


def prefect_writes() -> int:
    """FLOWDECK_PREFECT_WRITES: Prefect API writes in flight at once per process (2)."""
    return int(os.environ.get("FLOWDECK_PREFECT_WRITES") or 2)


# WorkerSettings field -> the variable that overrides it
WORKER_VARIABLES = {
    "concurrency": "FLOWDECK_WORKER_CONCURRENCY",
    "poll_interval": "FLOWDECK_WORKER_POLL_INTERVAL",
    "lookahead": "FLOWDECK_WORKER_LOOKAHEAD",
    "heartbeat_interval": "FLOWDECK_WORKER_HEARTBEAT",
    "dead_after": "FLOWDECK_WORKER_DEAD_AFTER",
    "sync_grace": "FLOWDECK_SYNC_GRACE",
    "claim_grace": "FLOWDECK_WORKER_CLAIM_GRACE",
    "orphan_after": "FLOWDECK_WORKER_ORPHAN_AFTER",
}


def worker_overrides() -> dict[str, float]:
    """The worker settings set in the environment (FLOWDECK_WORKER_*, FLOWDECK_SYNC_GRACE),
    by WorkerSettings field; unset or empty variables are left out."""
    found: dict[str, float] = {}
    for name, variable in WORKER_VARIABLES.items():
        value = os.environ.get(variable)
        if value:
            found[name] = float(value)
    return found


# Variables that a CLI option also takes its default from (typer reads them by name) or that
# flowdeck sets for a process it starts.
DEFINITIONS_VARIABLE = "FLOWDECK_DEFINITIONS"
DATABASE_URL_VARIABLE = "FLOWDECK_DATABASE_URL"
REDIS_URL_VARIABLE = "FLOWDECK_REDIS_URL"
API_PROCESSES_VARIABLE = "FLOWDECK_SERVER_API_PROCESSES"
API_TOKENS_VARIABLE = "FLOWDECK_API_TOKENS"


def api_tokens() -> list[str]:
    """FLOWDECK_API_TOKENS: bearer tokens of `flowdeck api`, comma-separated (blanks included;
    the API also reads $FLOWDECK_HOME/api_tokens)."""
    return [part.strip() for part in (os.environ.get(API_TOKENS_VARIABLE) or "").split(",")]


PIN_KEY_VARIABLE = "FLOWDECK_PIN_KEY"
MIN_PIN_KEY_LENGTH = 32


def pin_key() -> str | None:
    """FLOWDECK_PIN_KEY: the key that signs the flow runs flowdeck creates (unset: one
    generated in $FLOWDECK_HOME/pin_key); the same on every machine of a cluster."""
    return os.environ.get(PIN_KEY_VARIABLE) or None


SERVER_NICE_VARIABLE = "FLOWDECK_SERVER_NICE"
DEFAULT_SERVER_NICE = 5  # the callers keep the CPU: Prefect is off their path (docs/benchmarks.md)


def server_nice() -> int:
    """FLOWDECK_SERVER_NICE: the CPU niceness (0-19) of the local Prefect server flowdeck
    starts, so that callers keep the CPU when the two compete (docs/benchmarks.md);
    raises ValueError naming the variable for anything else."""
    raw = os.environ.get(SERVER_NICE_VARIABLE) or str(DEFAULT_SERVER_NICE)
    if not raw.strip().isdigit() or not 0 <= int(raw) <= 19:
        raise ValueError(f"{SERVER_NICE_VARIABLE} must be a whole number from 0 to 19, not {raw!r}")
    return int(raw)


OUTBOX_SYNC_VARIABLE = "FLOWDECK_OUTBOX_SYNC"
OUTBOX_SYNC_MODES = ("normal", "full")


def outbox_sync() -> str:
    """FLOWDECK_OUTBOX_SYNC: SQLite's `synchronous` for the outbox. `normal` (default, as
    Prefect's own SQLite database) survives kill -9 of any process; `full` also survives a
    power loss, at an fsync per commit (docs/architecture.md). Anything else is a
    ConfigurationError naming the variable."""
    raw = (os.environ.get(OUTBOX_SYNC_VARIABLE) or "normal").strip().lower()
    if raw not in OUTBOX_SYNC_MODES:
        raise ConfigurationError(f"{OUTBOX_SYNC_VARIABLE} must be one of {', '.join(OUTBOX_SYNC_MODES)}, not {raw!r}")
    return raw


def api_batch_concurrency() -> int:
    """FLOWDECK_API_BATCH_CONCURRENCY: starts in flight at once for one batch request (4)."""
    return max(1, int(os.environ.get("FLOWDECK_API_BATCH_CONCURRENCY") or 4))


def sandbox_bwrap() -> str:
    """FLOWDECK_SANDBOX_BWRAP: the bubblewrap program code steps run under (`bwrap` on PATH)."""
    return os.environ.get("FLOWDECK_SANDBOX_BWRAP") or "bwrap"


def sandbox_cgroup_parent() -> str | None:
    """FLOWDECK_SANDBOX_CGROUP: a delegated cgroup v2 directory (with the memory, pids and cpu
    controllers) to create each code step's cgroup in; unset: the engine's own cgroup(s)."""
    return os.environ.get("FLOWDECK_SANDBOX_CGROUP") or None


SANDBOX_CPUS_VARIABLE = "FLOWDECK_SANDBOX_CPUS"
SANDBOX_CPUS_BOUNDS = (0.01, 1024.0)  # the kernel's smallest quota is 1 ms of a 100 ms period


def sandbox_cpus() -> float:
    """FLOWDECK_SANDBOX_CPUS: the cores one code step's whole process tree may use at most
    (1.0; a cgroup CPU quota); raises ValueError naming the variable for anything but a
    number from 0.01 to 1024."""
    raw = os.environ.get(SANDBOX_CPUS_VARIABLE) or "1.0"
    try:
        cpus = float(raw)
    except ValueError:
        cpus = float("nan")
    low, high = SANDBOX_CPUS_BOUNDS
    if not low <= cpus <= high:  # NaN fails too
        raise ValueError(f"{SANDBOX_CPUS_VARIABLE} must be a number of cores from {low} to {high:g}, not {raw!r}")
    return cpus


def check() -> None:
    """Read every setting that can be wrong, so that a bad one stops a command before it
    starts anything (a local server, a worker); ConfigurationError names the variable."""
    try:
        server_nice()
        sandbox_cpus()
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    outbox_sync()
