"""What every benchmark shares: a private Prefect server, workers, and statistics.

Each benchmark starts its own local Prefect server (SQLite, the embedded default) under a
temporary FLOWDECK_HOME, so figures never depend on a developer's state, and measures
flowdeck and the plain-Prefect baseline side by side against that same server in one run:
the machine is shared and noisy, so ratios matter more than absolute times.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowdeck.local.spawn import flowdeck_command, free_port, spawn

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = Path(__file__).resolve().parent / "definitions"


def private_environment() -> str:
    """Point this process at a fresh local server; call before importing prefect."""
    os.environ["FLOWDECK_HOME"] = tempfile.mkdtemp(prefix="flowdeck-bench-")
    os.environ["FLOWDECK_SERVER_PORT"] = str(free_port())
    os.environ["FLOWDECK_DEFINITIONS"] = str(DEFINITIONS)
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("PREFECT_HOME", None)
    from flowdeck.local import prefect_server

    return prefect_server.configure_environment()


def stop_server() -> None:
    from flowdeck.local import prefect_server

    prefect_server.stop()


class Worker:
    def __init__(self, concurrency: int = 100) -> None:
        self.log = Path(os.environ["FLOWDECK_HOME"]) / f"worker-{time.monotonic_ns()}.log"
        command = flowdeck_command("worker", "--concurrency", str(concurrency))
        spawned = spawn(command, self.log, cwd=ROOT, fresh_log=True)
        self.process = spawned.process
        spawned.wait_ready(spawned.says(b"serving"), 120)

    def stop(self) -> None:
        if self.process.poll() is None:
            from flowdeck.local.daemons import terminate_group

            terminate_group(self.process.pid)


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def ms(seconds: float) -> float:
    return seconds * 1000


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}
