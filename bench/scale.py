"""Throughput with 1, 2 and 4 workers on a PostgreSQL-backed Prefect, beside the embedded
SQLite default, in one run.

Each configuration gets a fresh server (a fresh PostgreSQL database, Redis messaging) and
its own worker processes, started the way tests/scale starts them (its harness is reused);
a burst of BURST three-step executions goes in through `flowdeck api`'s batch endpoint, and
throughput is executions per second from the first submission until all have succeeded.
The server's CPU time per execution is read from /proc, because that is what bounds
throughput on this machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFINITIONS, ROOT, machine

sys.path.insert(0, str(ROOT / "tests" / "scale"))
from scale_cluster import Cluster, group_members, submit_batch  # noqa: E402  (the suite's harness)

DEFAULT_LIVENESS = {
    "FLOWDECK_WORKER_HEARTBEAT": "2",
    "FLOWDECK_WORKER_DEAD_AFTER": "15",
    "FLOWDECK_WORKER_POLL_INTERVAL": "2",
}
BURST = int(os.environ.get("FLOWDECK_BENCH_SCALE_BURST") or 200)
CONFIGURATIONS: list[tuple[str, dict[str, Any], int]] = [
    ("sqlite_embedded_1_worker", {"database": None}, 1),
    ("postgres_1_worker", {}, 1),
    ("postgres_2_workers", {}, 2),
    ("postgres_4_workers", {}, 4),
    ("postgres_2_api_processes_2_workers", {"api_processes": 2}, 2),
]


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time of these process groups (a multi-process server has children)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for member in (m for pid in pids for m in group_members(pid)):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _measure(name: str, options: dict[str, Any], workers: int) -> dict[str, Any]:
    cluster = Cluster(Path(tempfile.mkdtemp(prefix=f"flowdeck-bench-{name}-")), **options)
    cluster.start()
    try:
        for _ in range(workers):
            # flowdeck's default liveness settings, not the suite's faster ones
            cluster.start_worker(concurrency=100, definitions=DEFINITIONS, **DEFAULT_LIVENESS)
        _, api_url = cluster.start_api(definitions=DEFINITIONS)
        submit_batch(api_url, cluster.token, "bench_three", [{"n": 0}])  # warm: deployment, caches
        time.sleep(2)
        server_cpu = _cpu_seconds(cluster.server_pids())
        began = time.monotonic()
        ids = submit_batch(api_url, cluster.token, "bench_three", [{"n": i} for i in range(BURST)])
        submitted = time.monotonic() - began
        states = cluster.wait_final(ids, timeout=BURST * 3)
        elapsed = time.monotonic() - began
        server_cpu = _cpu_seconds(cluster.server_pids()) - server_cpu
        return {
            "throughput_per_s": round(BURST / elapsed, 2),
            "submit_seconds": round(submitted, 1),
            "succeeded": sum(1 for s in states.values() if s == "COMPLETED"),
            "server_cpu_ms_per_execution": round(server_cpu / BURST * 1000, 1),
        }
    finally:
        cluster.stop()


def main() -> dict[str, Any]:
    results: dict[str, Any] = {"burst": BURST}
    for name, options, workers in CONFIGURATIONS:
        results[name] = _measure(name, options, workers)
    results["machine"] = machine()
    return results
