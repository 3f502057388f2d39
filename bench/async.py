"""Async mode: submission, start, end-to-end, throughput and resume lag, beside `flow.serve()`.

All against one fresh local Prefect server (SQLite, the embedded default) and one
`flowdeck worker`. Times are read from Prefect's own records (flow-run and task-run start
and end times), not from polling, so they do not include a poller's interval.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, Worker, machine, ms, p50, percentile, private_environment, stop_server

from flowdeck.local.spawn import spawn

SINGLE_RUNS = 30
BURST = 200
RESUME_RUNS = 15
SERVE_RUNS = 5


def main() -> dict[str, Any]:
    private_environment()
    worker = Worker(concurrency=200)
    try:
        result = asyncio.run(_measure())
    finally:
        worker.stop()
    result["prefect_requests_per_execution"] = _requests_per_execution(worker.log, result.pop("_submitter_counts"))
    try:
        result["prefect_serve_start_p50_ms"] = _serve_baseline()
    finally:
        stop_server()
    result["machine"] = machine()
    return result


async def _wait_done(engine: Any, execution_ids: list[str], timeout: float = 300, interval: float = 0.05) -> list[Any]:
    """The flow runs of these executions once all have ended, in the order given (found by
    their idempotency key: the execution id; submissions are in Prefect once drained).
    Each look is a query the server answers: the burst looks once a second, so that the
    observer does not take a share of the server the floor does not pay."""
    from flowdeck.store import encoding

    deadline = time.monotonic() + timeout
    pending = set(execution_ids)
    done: dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        page = list(pending)[:200]
        runs = await engine.api.read_flow_runs(
            {
                "flow_runs": {
                    # submissions' flow runs carry their execution id as idempotency key
                    "idempotency_key": {"any_": page},
                    "state": {"type": {"any_": ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]}},
                },
                "limit": 200,
            }
        )
        for run in runs:
            execution_id = encoding.execution_id_of(run)
            pending.discard(execution_id)
            done[execution_id] = run
        if pending:
            await asyncio.sleep(interval)
    if pending:
        raise RuntimeError(f"{len(pending)} executions did not finish")
    return [done[e] for e in execution_ids]


FLOOR_SECONDS = 10.0
FLOOR_CLIENTS = 4


async def _floor(api: Any) -> float:
    """Prefect's floor on the same server, in the same run: bare flow runs created Scheduled,
    then Pending, Running, Completed (what a worker-claimed run costs; no parameters, tags,
    task runs or results), FLOOR_CLIENTS at once, through flowdeck's client (its 503 retry
    is the floor tool's: 10-20 ms, doubling). Records completed per second."""
    from prefect.states import Completed, Pending, Running

    flow_id = await api.flow_id("prefect-floor")
    done = 0
    stop_at = time.monotonic() + FLOOR_SECONDS

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            response = await api.request(
                "POST",
                "/flow_runs/",
                json={"flow_id": str(flow_id), "state": {"type": "SCHEDULED", "name": "Scheduled"}},
            )
            run_id = response.json()["id"]
            for state in (Pending(), Running(), Completed()):
                await api.set_flow_run_state(run_id, state)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(FLOOR_CLIENTS)))
    return round(done / (time.monotonic() - started), 2)


async def _first_step_start(engine: Any, flow_run_id: Any, step: str) -> datetime:
    for _ in range(100):
        task_runs = await engine.api.read_task_runs(flow_run_id)
        found = [t for t in task_runs if t.name == step and t.start_time]
        if found:
            return found[0].start_time
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no task run {step} for {flow_run_id}")


async def _measure() -> dict[str, Any]:
    from flowdeck.execution.service import Flowdeck

    engine = Flowdeck.open()
    submit_ms: list[float] = []
    start_ms: list[float] = []
    e2e_ms: list[float] = []

    for index in range(SINGLE_RUNS + 3):
        submitted_at = datetime.now(UTC)
        started = time.perf_counter()
        body = await engine.submit("bench_three", "latest", {"n": index})
        elapsed = time.perf_counter() - started
        (run,) = await _wait_done(engine, [body["execution_id"]])
        assert run.state_type.value == "COMPLETED", run.state
        if index < 3:
            continue
        first = await _first_step_start(engine, run.id, "start")
        submit_ms.append(ms(elapsed))
        start_ms.append(ms((first - submitted_at).total_seconds()))
        e2e_ms.append(ms((run.end_time - submitted_at).total_seconds()))

    # Throughput: BURST executions submitted at once, until all have succeeded (the last
    # end time as Prefect recorded it: the server's clock, this machine's).
    burst_started_at = datetime.now(UTC)
    burst_started = time.perf_counter()
    bodies = await asyncio.gather(*(engine.submit("bench_three", "latest", {"n": i}) for i in range(BURST)))
    submitted = time.perf_counter()
    runs = await _wait_done(engine, [b["execution_id"] for b in bodies], timeout=600, interval=1.0)
    burst_seconds = (max(r.end_time for r in runs) - burst_started_at).total_seconds()
    failures = [r for r in runs if r.state_type.value != "COMPLETED"]

    # Resume lag: due time of a 2 s Wait to the start of the step after it.
    lags: list[float] = []
    for _ in range(RESUME_RUNS):
        body = await engine.submit("bench_wait", "latest", {})
        (run,) = await _wait_done(engine, [body["execution_id"]])
        flow_run_id = run.id
        wait_started = await _first_step_start(engine, flow_run_id, "pause")
        after = await _first_step_start(engine, flow_run_id, "after")
        lags.append(ms((after - wait_started).total_seconds() - 2.0))
    # what the submitting process sent (the drain's creates, states, events), before the
    # floor's own requests and without this bench's reads (they are not an execution's cost)
    submitter = {k: v for k, v in engine.api.counts.items() if k != "read"}
    floor = await _floor(engine.api)
    await engine.aclose()

    return {
        "submit_p50_ms": p50(submit_ms),
        "submit_p95_ms": percentile(submit_ms, 95),
        "start_p50_ms": p50(start_ms),
        "e2e_p50_ms": p50(e2e_ms),
        "throughput_per_s": round(BURST / burst_seconds, 2),
        "prefect_floor_per_s": floor,
        "throughput_vs_floor": round(BURST / burst_seconds / floor, 3) if floor else None,
        "burst_submit_seconds": round(submitted - burst_started, 2),
        "burst_failures": len(failures),
        "resume_lag_p50_ms": p50(lags),
        "resume_lag_p95_ms": percentile(lags, 95),
        "runs": {"single": SINGLE_RUNS, "burst": BURST, "resume": RESUME_RUNS},
        "_submitter_counts": submitter,
    }


EXECUTIONS = SINGLE_RUNS + 3 + BURST + RESUME_RUNS


def _requests_per_execution(worker_log: Path, submitter: dict[str, int]) -> dict[str, Any]:
    """Prefect requests per execution by kind: the worker's (it logs its counts when it
    stops; they include its heartbeats and polls over the whole run) plus the submitting
    process's non-read requests."""
    import json

    worker: dict[str, int] = {}
    for line in worker_log.read_text(errors="replace").splitlines():
        if "prefect requests: " in line:
            worker = json.loads(line.split("prefect requests: ", 1)[1])
    total = {k: worker.get(k, 0) + submitter.get(k, 0) for k in sorted({*worker, *submitter})}
    return {
        "executions": EXECUTIONS,
        "worker": {k: round(v / EXECUTIONS, 2) for k, v in worker.items()},
        "submitter": {k: round(v / EXECUTIONS, 2) for k, v in submitter.items()},
        "total": round(sum(total.values()) / EXECUTIONS, 2),
    }


SERVE_SCRIPT = """
from prefect import flow

@flow(name="serve-baseline")
def serve_baseline():
    return 1

if __name__ == "__main__":
    serve_baseline.serve(name="baseline")
"""


def _serve_baseline() -> float:
    """Plain Prefect: a `flow.serve()` deployment with default settings, submission to running."""
    script = ROOT / "bench" / ".serve_baseline.py"
    script.write_text(SERVE_SCRIPT)
    log = Path(os.environ["FLOWDECK_HOME"]) / "serve.log"
    process = spawn([sys.executable, str(script)], log, cwd=ROOT, fresh_log=True).process  # ready: _serve_measure
    try:
        return asyncio.run(_serve_measure())
    finally:
        process.terminate()
        process.wait(timeout=30)
        script.unlink(missing_ok=True)


async def _serve_measure() -> float:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async with get_client() as client:
        for _ in range(120):
            try:
                await client.read_deployment_by_name("serve-baseline/baseline")
                break
            except Exception:
                await asyncio.sleep(0.5)
        samples: list[float] = []
        for _ in range(SERVE_RUNS):
            submitted_at = datetime.now(UTC)
            flow_run = await run_deployment("serve-baseline/baseline", timeout=0)
            for _ in range(600):
                run = await client.read_flow_run(flow_run.id)
                if run.start_time is not None:
                    samples.append(ms((run.start_time - submitted_at).total_seconds()))
                    break
                await asyncio.sleep(0.1)
            while not (await client.read_flow_run(flow_run.id)).state.is_final():
                await asyncio.sleep(0.2)
    return p50(samples)
