"""`python bench/run.py api`: the HTTP API under load, beside the in-process sync figure.

Starts a private Prefect server (temporary FLOWDECK_HOME, free port) and `flowdeck api`
serving tests/api_definitions, then measures on the 5-step no-I/O workflow `five_steps`:

    inprocess_sync_p50_ms         Flowdeck.run_sync in this process, sequential calls
    http_sync_p50_ms              one sync call at a time over HTTP
    http_concurrent_p50/p95/p99   200 sync calls at once over HTTP (and how many failed)
    async_submit_per_s            200 POST .../async at once, starts per second
    batch_1000_seconds            one POST .../batch of 1,000 inputs
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowdeck.local.spawn import answers, flowdeck_command, free_port, spawn

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "tests" / "api_definitions"
TOKEN = "bench-token"
CONCURRENT = 200
SEQUENTIAL = 30


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _private_environment() -> None:
    os.environ["FLOWDECK_HOME"] = tempfile.mkdtemp(prefix="flowdeck-bench-api-")
    os.environ["FLOWDECK_SERVER_PORT"] = str(free_port())
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["FLOWDECK_DEFINITIONS"] = str(DEFINITIONS)


async def _inprocess_p50() -> float:
    from flowdeck.execution.service import Flowdeck

    async with Flowdeck.open(DEFINITIONS) as engine:
        times = []
        for n in range(SEQUENTIAL + 3):
            began = time.perf_counter()
            call = await engine.run_sync("five_steps", "latest", {"n": n})
            times.append((time.perf_counter() - began) * 1000)
            await call.finish()
            assert call.body["status"] == "success", call.body
        return round(statistics.median(times[3:]), 1)


async def _over_http(url: str) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600, limits=limits) as client:

        async def sync_call(n: int) -> tuple[float, int]:
            began = time.perf_counter()
            body = {"workflow_id": "five_steps", "input_data": {"n": n}}
            response = await client.post("/workflow/workflow-executions", json=body)
            ok = response.status_code == 200 and response.json()["output"]["doubled"] == 2 * n
            return (time.perf_counter() - began) * 1000, 0 if ok else 1

        sequential = [await sync_call(n) for n in range(SEQUENTIAL + 3)][3:]
        await asyncio.sleep(2)  # let the final states of the sequential calls land
        began = time.perf_counter()
        burst = await asyncio.gather(*(sync_call(n) for n in range(CONCURRENT)))
        burst_wall = time.perf_counter() - began
        burst_ms = [ms for ms, _ in burst]
        await asyncio.sleep(5)

        async def submit(n: int) -> int:
            body = {"workflow_id": "five_steps", "input_data": {"n": n}}
            response = await client.post("/workflow/workflow-executions/async", json=body)
            return 0 if response.status_code == 202 else 1

        began = time.perf_counter()
        submit_failures = sum(await asyncio.gather(*(submit(n) for n in range(CONCURRENT))))
        submit_rate = CONCURRENT / (time.perf_counter() - began)

        began = time.perf_counter()
        batch = await client.post(
            "/workflow/workflow-executions/batch",
            json={"workflow_id": "five_steps", "inputs": [{"n": n} for n in range(1000)]},
        )
        batch_seconds = time.perf_counter() - began
    return {
        "http_sync_p50_ms": round(statistics.median([ms for ms, _ in sequential]), 1),
        "http_concurrent_calls": CONCURRENT,
        "http_concurrent_p50_ms": _pct(burst_ms, 0.50),
        "http_concurrent_p95_ms": _pct(burst_ms, 0.95),
        "http_concurrent_p99_ms": _pct(burst_ms, 0.99),
        "http_concurrent_wall_s": round(burst_wall, 2),
        "http_concurrent_failures": sum(bad for _, bad in burst),
        "async_submit_per_s": round(submit_rate, 1),
        "async_submit_failures": submit_failures,
        "batch_1000_seconds": round(batch_seconds, 2),
        "batch_1000_status": batch.status_code,
    }


def main() -> dict[str, Any]:
    _private_environment()
    from flowdeck.local import prefect_server

    prefect_server.configure_environment()
    port = free_port()
    env = dict(os.environ, FLOWDECK_API_TOKENS=TOKEN)
    log = Path(os.environ["FLOWDECK_HOME"]) / "api.log"
    spawned = spawn(flowdeck_command("api", "--port", str(port)), log, env=env, cwd=ROOT, fresh_log=True)
    server = spawned.process
    url = f"http://127.0.0.1:{port}"
    try:
        spawned.wait_ready(lambda: answers(f"{url}/healthz"), 60, interval=0.2)
        result: dict[str, Any] = {"workflow": "five_steps (5 steps, no I/O)"}
        result["inprocess_sync_p50_ms"] = asyncio.run(_inprocess_p50())
        result.update(asyncio.run(_over_http(url)))
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)
        prefect_server.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
