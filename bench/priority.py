"""`python bench/run.py priority`: the embedded Prefect server's CPU priority, both ways in one run.

Runs `bench/run.py sync` and `bench/run.py async` once with the server at nice 0 and once
at nice NICE (FLOWDECK_SERVER_NICE; each run starts its own server), alternating, and
keeps the figures that decide it: the callers' latencies (in process and over HTTP), the
drain lag, async throughput and its ratio to Prefect's floor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from _common import ROOT, machine

NICE = 5
RUN_TIMEOUT_SECONDS = 900


def _run(name: str, nice: int) -> dict[str, Any]:
    env = dict(os.environ, FLOWDECK_SERVER_NICE=str(nice))
    command = [sys.executable, str(ROOT / "bench" / "run.py"), name]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _sync_figures(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        return result
    http = result["concurrency_over_http"]
    return {
        "in_process_200_p50_ms": result["concurrency_in_process"]["200"]["p50_ms"],
        "overhead_p50_ms": result["overhead_p50_ms"],
        "http": {
            n: {k: http[n].get(k) for k in ("p50_ms", "p99_ms", "failures", "drain_lag_p50_ms", "drain_lag_p95_ms")}
            | {"no_prefect_p50_ms": http[n]["no_prefect"]["p50_ms"], "ratio": http[n]["p50_ratio_vs_no_prefect"]}
            for n in ("1", "50", "200")
        },
        "load_1m": result["machine"]["load_1m"],
    }


def _async_figures(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        return result
    keys = ("submit_p50_ms", "start_p50_ms", "e2e_p50_ms", "throughput_per_s", "prefect_floor_per_s")
    return {k: result[k] for k in keys} | {
        "throughput_vs_floor": result["throughput_vs_floor"],
        "prefect_requests_per_execution": result["prefect_requests_per_execution"],
        "load_1m": result["machine"]["load_1m"],
    }


def main() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for nice in (0, NICE):
        figures[f"nice_{nice}"] = {
            "sync": _sync_figures(_run("sync", nice)),
            "async": _async_figures(_run("async", nice)),
        }
    figures["machine"] = machine()
    return figures
