"""Sync mode: flowdeck against plain Python and hand-written Prefect flows, same server.

Workload: `bench_five` (5 steps, no I/O). Each round runs, in turn: flowdeck's sync call
(time until the caller has the documented body; Prefect's bookkeeping after the answer is
awaited before the next call, untimed, as the CLI and API do), the same definition
interpreted in plain Python, a hand-written `@flow` with five `@task` calls (default
settings) and its async twin. Interleaving the four keeps the machine's noise fair.

Then `concurrency_in_process` (N calls at once in this process) and `concurrency_over_http`
(bench/_sync_http.py: 1, 50, 200 calls of `bench_http` through `flowdeck api`, beside the
same API app with no Prefect).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _common import machine, ms, p50, percentile, private_environment, stop_server
from _sync_http import over_http

ROUNDS = 40
WARMUP = 3
CONCURRENCY = (1, 50, 200)


async def _concurrent(engine: Any, definition: Any, n: int) -> dict[str, Any]:
    """`n` sync calls at once in one process (in-process, not over HTTP): answer latency,
    failures, drain lag (answer -> final state in Prefect), beside the same `n` runs of the
    interpreter with no Prefect and no outbox."""
    from flowdeck.runtime.interpreter import Run

    async def one() -> tuple[float, float | None, bool]:
        started = time.perf_counter()
        try:
            call = await engine.run_sync("bench_five", "latest", {"n": 12})
        except Exception:
            return ms(time.perf_counter() - started), None, False
        answered = time.perf_counter()
        await call.finish()
        return ms(answered - started), ms(time.perf_counter() - answered), call.body["status"] == "success"

    async def plain() -> float:
        started = time.perf_counter()
        await Run(definition=definition, execution_id="exec_plain", mode="sync", input={"n": 12}).execute()
        return ms(time.perf_counter() - started)

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    all_in_prefect = ms(time.perf_counter() - started)
    baseline = await asyncio.gather(*(plain() for _ in range(n)))
    answers = [r[0] for r in results]
    lags = [r[1] for r in results if r[1] is not None]
    return {
        "p50_ms": p50(answers),
        "p95_ms": percentile(answers, 95),
        "p99_ms": percentile(answers, 99),
        "failures": sum(1 for r in results if not r[2]),
        "drain_lag_p50_ms": p50(lags) if lags else None,
        "drain_lag_p95_ms": percentile(lags, 95) if lags else None,
        "all_in_prefect_after_ms": all_in_prefect,
        "no_prefect_p50_ms": p50(baseline),
        "no_prefect_p99_ms": percentile(baseline, 99),
    }


def main() -> dict[str, Any]:
    private_environment()
    try:
        result = asyncio.run(_measure())
        result["concurrency_over_http"] = over_http()
        result["machine_after_http"] = machine()
        return result
    finally:
        stop_server()


async def _measure() -> dict[str, Any]:
    from prefect import flow, task

    from flowdeck.execution.service import Flowdeck
    from flowdeck.runtime.interpreter import Run
    from flowdeck.store.recording import flush_events

    @task
    def step(value: int) -> int:
        return value + 1

    @flow(name="prefect-five-sync")
    def prefect_sync(n: int) -> int:
        for _ in range(5):
            n = step(n)
        return n

    @task
    async def astep(value: int) -> int:
        return value + 1

    @flow(name="prefect-five-async")
    async def prefect_async(n: int) -> int:
        for _ in range(5):
            n = await astep(n)
        return n

    engine = Flowdeck.open()
    definition = engine.resolve("bench_five", "latest", allow_draft=False)
    samples: dict[str, list[float]] = {"flowdeck": [], "plain": [], "prefect_sync": [], "prefect_async": []}
    task_runs_seen: list[int] = []

    for index in range(WARMUP + ROUNDS):
        record = index >= WARMUP
        started = time.perf_counter()
        call = await engine.run_sync("bench_five", "latest", {"n": 12})
        elapsed = time.perf_counter() - started
        assert call.body["status"] == "success", call.body
        await call.finish()
        if record:
            samples["flowdeck"].append(ms(elapsed))

        started = time.perf_counter()
        outcome = await Run(definition=definition, execution_id="exec_plain", mode="sync", input={"n": 12}).execute()
        elapsed = time.perf_counter() - started
        assert outcome.status == "success"
        if record:
            samples["plain"].append(ms(elapsed))

        started = time.perf_counter()
        await asyncio.to_thread(prefect_sync, 1)
        if record:
            samples["prefect_sync"].append(ms(time.perf_counter() - started))

        started = time.perf_counter()
        await prefect_async(1)
        if record:
            samples["prefect_async"].append(ms(time.perf_counter() - started))

    # Every step of the last flowdeck execution is a task run in Prefect.
    from flowdeck.store import read_model

    await flush_events()
    flow_run_id = (await read_model.read_flow_run(engine.api, call.execution_id)).id
    for _ in range(50):
        task_runs = await engine.api.read_task_runs(flow_run_id)
        if len(task_runs) >= 5:
            break
        await asyncio.sleep(0.1)
    task_runs_seen.append(len(task_runs))
    concurrency = {str(n): await _concurrent(engine, definition, n) for n in CONCURRENCY}
    await engine.aclose()

    flowdeck_p50 = p50(samples["flowdeck"])
    plain_p50 = p50(samples["plain"])
    prefect_sync_p50 = p50(samples["prefect_sync"])
    return {
        "workload": "bench_five: 5 steps, no I/O",
        "runs": ROUNDS,
        "flowdeck_p50_ms": flowdeck_p50,
        "flowdeck_p95_ms": percentile(samples["flowdeck"], 95),
        "plain_python_p50_ms": plain_p50,
        "prefect_sync_flow_p50_ms": prefect_sync_p50,
        "prefect_async_flow_p50_ms": p50(samples["prefect_async"]),
        "overhead_p50_ms": round(flowdeck_p50 - plain_p50, 2),
        "ratio_vs_prefect": round(flowdeck_p50 / prefect_sync_p50, 3),
        "task_runs_recorded_for_last_execution": task_runs_seen[-1],
        "concurrency_in_process": concurrency,
        "machine": machine(),
    }
