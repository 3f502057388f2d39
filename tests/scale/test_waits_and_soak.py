"""Many executions waiting at once, and a soak of steady mixed traffic."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from scale_cluster import (
    SOAK_MINUTES,
    WAITING,
    Cluster,
    EffectServer,
    group_size,
    percentiles,
    report,
    size,
    submit_batch,
)

pytestmark = pytest.mark.timeout(4 * 3600)

# Time to bring one execution to `waiting` (start, first step, suspend) on this 2-core
# machine, with margin, so that all wait before the first falls due; and the spacing of
# their due times, within what the server resumes. Measured at 10,000 with two API
# processes: 8.1 reached `waiting` per second, and 5 per second resumed on time
# (docs/reliability.md). A slower machine sets FLOWDECK_SCALE_SECONDS_PER_WAIT higher.
SECONDS_PER_WAIT = size("seconds_per_wait", 0.5, 0.2)
RESUME_SPACING = size("resume_spacing", 0.5, 0.2)


def test_many_waiting_executions_hold_no_worker_and_resume_on_time(cluster: Cluster) -> None:
    effects = EffectServer(latency=0.0)
    workers = [cluster.start_worker(concurrency=20) for _ in range(2)]
    _, api_url = cluster.start_api()
    processes_before = {w.name: group_size(w.pid) for w in workers}
    memory_before = cluster.memory()
    first_due = datetime.now(UTC) + timedelta(seconds=30 + WAITING * SECONDS_PER_WAIT)
    inputs = [
        {"base_url": effects.url, "resume_at": (first_due + timedelta(seconds=i * RESUME_SPACING)).isoformat()}
        for i in range(WAITING)
    ]
    began = time.monotonic()
    ids = submit_batch(api_url, cluster.token, "scale_wait", inputs)
    waiting_filter = {"tags": {"all_": ["workflow:scale_wait"]}, "state": {"name": {"any_": ["Waiting"]}}}
    busy_filter = {"tags": {"all_": ["workflow:scale_wait"]}, "state": {"type": {"any_": ["PENDING", "RUNNING"]}}}
    with cluster.prefect() as client:
        # Until every execution waits, or the first falls due (the machine was slower than
        # FLOWDECK_SCALE_SECONDS_PER_WAIT assumes): the report then says how many did.
        while (waiting := cluster.count(client, waiting_filter)) < len(ids) and datetime.now(UTC) < first_due:
            time.sleep(2)
        all_waiting_after = time.monotonic() - began
        held = cluster.count(client, busy_filter)
    memory_waiting = cluster.memory()
    processes_waiting = {w.name: group_size(w.pid) for w in workers}

    states = cluster.wait_final(
        ids,
        timeout=(first_due - datetime.now(UTC)).total_seconds() + WAITING * RESUME_SPACING * 3 + 120,
        flow_run_filter={"tags": {"all_": ["workflow:scale_wait"]}},
    )
    resumed_after = time.monotonic() - began
    memory_end = cluster.memory()
    effects.close()
    lags = percentiles(effects.resume_lags)
    report(
        "waiting",
        {
            "executions": len(ids),
            "waiting_at_once": waiting,
            "all_waiting_after_seconds": round(all_waiting_after, 1),
            "all_ended_after_seconds": round(resumed_after, 1),
            "worker_concurrency": 20,
            "workers": len(workers),
            "api_processes": cluster.api_processes,
            "resume_spacing_seconds": RESUME_SPACING,
            "resume_lag_seconds": lags,
            "memory_mb": {"before": memory_before, "while_all_wait": memory_waiting, "end": memory_end},
            "processes_per_worker_before_and_while_waiting": [processes_before, processes_waiting],
            "pending_or_running_while_all_wait": held,
        },
    )
    assert waiting == len(ids), (
        f"only {waiting} of {len(ids)} were waiting when the first fell due: this machine is slower "
        "than FLOWDECK_SCALE_SECONDS_PER_WAIT assumes; raise it"
    )
    assert Counter(states.values()) == {"COMPLETED": len(ids)}
    assert held == 0  # while all wait, none is pending or running anywhere
    assert processes_waiting == processes_before  # no process was started per waiting execution
    counts = Counter(effects.counts.values())
    assert counts == {1: 2 * len(ids)}, counts  # before and after: once each
    # On time means within a second of the due time, as long as executions fall due no
    # faster than the server can resume them (measured here: about 7 per second with two
    # API processes, 2 per second with one under other load; docs/reliability.md).
    assert lags["p50"] < 1.0, lags


def test_soak_of_steady_mixed_traffic(cluster: Cluster) -> None:
    rate = size("soak_rate", 1.5, 1.5)  # executions started per second
    effects = EffectServer()
    for _ in range(2):
        cluster.start_worker(concurrency=50)
    _, api_url = cluster.start_api()
    kinds = ("scale_compute", "scale_http", "scale_wait")
    submitted: list[tuple[float, str, str, float]] = []  # (time, execution id, workflow, submit latency)
    errors: list[str] = []
    warm_up_until = time.monotonic() + 30
    memory_start: dict[str, float] = {}
    began = time.monotonic()
    end = began + 30 + SOAK_MINUTES * 60
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {cluster.token}"}) as client:
        index = 0
        while time.monotonic() < end:
            if not memory_start and time.monotonic() > warm_up_until:
                memory_start = cluster.memory()
            workflow_id = kinds[index % 3]
            input_data = (
                {"n": index}
                if workflow_id == "scale_compute"
                else {"base_url": effects.url, "resume_at": (datetime.now(UTC) + timedelta(seconds=3)).isoformat()}
            )
            index += 1
            sent = time.monotonic()
            response = client.post(
                f"{api_url}/workflow/workflow-executions/async",
                json={"workflow_id": workflow_id, "input_data": input_data},
            )
            if response.status_code != 202:
                errors.append(f"{response.status_code} {response.text[:200]}")
            else:
                submitted.append((sent - began, response.json()["execution_id"], workflow_id, time.monotonic() - sent))
            time.sleep(max(0.0, began + index / rate - time.monotonic()))
    ids = [e for _, e, _, _ in submitted]
    cluster.wait_final(ids, timeout=300)
    memory_end = cluster.memory()
    with cluster.prefect() as client:
        runs = cluster.runs(client, ids)
    effects.close()

    windows: dict[int, dict[str, list[float]]] = {}
    for at, execution_id, workflow_id, latency in submitted:
        window = windows.setdefault(int(at // 60), {"submit": [], "e2e": []})
        window["submit"].append(latency)
        run = runs[execution_id]
        if workflow_id != "scale_wait" and run.get("end_time"):
            created = datetime.fromisoformat(run["created"])
            window["e2e"].append((datetime.fromisoformat(run["end_time"]) - created).total_seconds())
    failed = [e for e, run in runs.items() if run["state_type"] != "COMPLETED"]
    unequal = [k for k, n in effects.counts.items() if n != 1]
    growth = {name: round(memory_end.get(name, 0) - start, 1) for name, start in memory_start.items()}
    report(
        "soak",
        {
            "minutes": SOAK_MINUTES,
            "rate_per_s": rate,
            "executions": len(ids),
            "errors": len(errors) + len(failed),
            "per_minute": {
                f"minute_{m + 1}": {"submit_s": percentiles(w["submit"]), "e2e_s": percentiles(w["e2e"])}
                for m, w in sorted(windows.items())
            },
            "memory_mb_start": memory_start,
            "memory_mb_end": memory_end,
            "memory_growth_mb": growth,
        },
    )
    assert errors == [] and failed == [] and unequal == []
    for name, start in memory_start.items():
        assert memory_end[name] <= start * 1.25 + 30, (name, start, memory_end[name])
