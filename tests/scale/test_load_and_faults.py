"""Many workers on one PostgreSQL-backed Prefect: load, a killed worker, a server restart."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from scale_cluster import (
    EXECUTIONS,
    Cluster,
    EffectServer,
    RedisServer,
    report,
    submit_batch,
)

pytestmark = pytest.mark.timeout(3600)

WAIT_SECONDS = 5
EXPECTED_EFFECTS = {
    "scale_compute": {},
    "scale_http": {"first": 1, "second": 1},
    "scale_wait": {"before": 1, "after": 1},
}


def mixed_inputs(count: int, effects_url: str) -> dict[str, list[dict[str, Any]]]:
    """A third without I/O, a third with two HTTP side effects, a third with a Wait."""
    resume_at = "set at submission"
    return {
        "scale_compute": [{"n": i} for i in range(count - 2 * (count // 3))],
        "scale_http": [{"base_url": effects_url} for _ in range(count // 3)],
        "scale_wait": [{"base_url": effects_url, "resume_at": resume_at} for _ in range(count // 3)],
    }


def submit_mix(api_url: str, token: str, inputs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """execution id -> workflow id; the three workflows interleaved in batches of 100."""
    kinds: dict[str, str] = {}
    offsets = dict.fromkeys(inputs, 0)
    while any(offsets[w] < len(inputs[w]) for w in inputs):
        for workflow_id, items in inputs.items():
            chunk = items[offsets[workflow_id] : offsets[workflow_id] + 100]
            offsets[workflow_id] += len(chunk)
            if workflow_id == "scale_wait":  # due a few seconds after its own submission
                resume_at = (datetime.now(UTC) + timedelta(seconds=WAIT_SECONDS)).isoformat()
                chunk = [{**item, "resume_at": resume_at} for item in chunk]
            if chunk:
                for execution_id in submit_batch(api_url, token, workflow_id, chunk):
                    kinds[execution_id] = workflow_id
    return kinds


def repeated_effects(effects: EffectServer, kinds: dict[str, str]) -> list[tuple[str, str, int]]:
    """(execution, step, count) for every side effect that did not happen exactly once."""
    wrong = []
    for execution_id, workflow_id in kinds.items():
        seen = effects.effects_of(execution_id)
        for step, expected in EXPECTED_EFFECTS[workflow_id].items():
            if seen.get(step, 0) != expected:
                wrong.append((execution_id, step, seen.get(step, 0)))
    return wrong


@pytest.mark.parametrize("workers", [2, 4])
def test_executions_shared_by_workers_each_run_exactly_once(cluster: Cluster, workers: int) -> None:
    effects = EffectServer()
    started = [cluster.start_worker(concurrency=50) for _ in range(workers)]
    _, api_url = cluster.start_api()
    memory_start = cluster.memory()
    began = time.monotonic()
    kinds = submit_mix(api_url, cluster.token, mixed_inputs(EXECUTIONS, effects.url))
    submitted = time.monotonic() - began
    states = cluster.wait_final(list(kinds), timeout=60 + EXECUTIONS * 2)
    elapsed = time.monotonic() - began
    memory_end = cluster.memory()
    for worker in started:
        worker.stop()
    effects.close()

    assert Counter(states.values()) == {"COMPLETED": len(kinds)}
    assert repeated_effects(effects, kinds) == []
    shares = {w.name: w.executed() for w in started}
    # every worker took part (attempts: a Wait makes two per execution)
    assert all(count and count > 0 for count in shares.values()), shares
    report(
        f"load_{workers}_workers",
        {
            "executions": len(kinds),
            "workers": workers,
            "submit_seconds": round(submitted, 1),
            "all_done_seconds": round(elapsed, 1),
            "throughput_per_s": round(len(kinds) / elapsed, 2),
            "attempts_per_worker": shares,
            "memory_mb_start": memory_start,
            "memory_mb_end": memory_end,
        },
    )


def test_a_worker_killed_mid_load_loses_nothing_and_repeats_no_finished_step(cluster: Cluster) -> None:
    effects = EffectServer(latency=0.2)  # slow enough that steps are in flight at the kill
    victim = cluster.start_worker(concurrency=50)
    survivor = cluster.start_worker(concurrency=50)
    _, api_url = cluster.start_api()
    inputs = mixed_inputs(EXECUTIONS, effects.url)
    inputs.pop("scale_compute")  # only executions with side effects: they are what could repeat
    kinds = submit_mix(api_url, cluster.token, inputs)

    # kill -9 once the victim has some work done and more in hand
    deadline = time.monotonic() + 600
    while sum(effects.counts.values()) < len(kinds) // 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    killed_at = time.time()
    victim.kill()
    states = cluster.wait_final(list(kinds), timeout=120 + EXECUTIONS * 2)
    survivor.stop()
    effects.close()

    assert Counter(states.values()) == {"COMPLETED": len(kinds)}
    lost = [(e, s, n) for e, s, n in repeated_effects(effects, kinds) if n == 0]
    assert lost == []
    repeats = [(e, s, n) for e, s, n in repeated_effects(effects, kinds) if n > 1]
    # A step that was still in flight when its worker died runs again (at-least-once for an
    # interrupted step); a step that had finished before the kill never does.
    finished_before_kill = [
        (e, s) for e, s, _ in repeats if effects.arrivals[(e, s)][0] < killed_at - 2 * effects.latency - 1.0
    ]
    assert finished_before_kill == []
    assert len(repeats) <= 50  # at most the victim's slots were in flight
    with cluster.prefect() as client:
        taken_over = (
            sum(1 for e in kinds if len(set(cluster.running_workers(client, e))) > 1) if len(kinds) <= 400 else None
        )
    report(
        "worker_killed",
        {
            "executions": len(kinds),
            "effects_before_kill": sum(len([t for t in ts if t < killed_at]) for ts in effects.arrivals.values()),
            "interrupted_steps_repeated": len(repeats),
            "executions_run_by_both_workers": taken_over,
            "survivor_attempts": survivor.executed(),
        },
    )


@dataclass
class FaultRun:
    accepted: dict[str, str]  # execution id -> workflow id
    refused: list[tuple[int, str]]  # (status, body) of submissions that got no id
    fault_seconds: float  # from the fault until the part was back


def steady_submissions_around(
    cluster: Cluster, effects: EffectServer, api_url: str, fault: Callable[[], None], repair: Callable[[], None]
) -> FaultRun:
    """Single async submissions one after another (half no-I/O, half HTTP) through `flowdeck
    api`; a quarter of the way in, `fault()`, 3 s, `repair()`; then on to EXECUTIONS."""
    accepted: dict[str, str] = {}
    refused: list[tuple[int, str]] = []
    stop = threading.Event()

    def submit_steadily() -> None:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {cluster.token}"}) as client:
            index = 0
            while not stop.is_set() and len(accepted) + len(refused) < EXECUTIONS:
                workflow_id = ("scale_compute", "scale_http")[index % 2]
                input_data = {"n": index} if workflow_id == "scale_compute" else {"base_url": effects.url}
                index += 1
                try:
                    response = client.post(
                        f"{api_url}/workflow/workflow-executions/async",
                        json={"workflow_id": workflow_id, "input_data": input_data},
                    )
                except httpx.HTTPError as error:
                    refused.append((0, str(error)))
                    continue
                if response.status_code == 202:
                    accepted[response.json()["execution_id"]] = workflow_id
                else:
                    refused.append((response.status_code, response.text))
                time.sleep(0.05)

    submitter = threading.Thread(target=submit_steadily)
    submitter.start()
    while len(accepted) < EXECUTIONS // 4 and submitter.is_alive():
        time.sleep(0.2)
    fault()
    began = time.monotonic()
    time.sleep(3)
    repair()
    fault_seconds = time.monotonic() - began
    submitter.join(timeout=EXECUTIONS * 3)
    stop.set()
    return FaultRun(accepted, refused, fault_seconds)


def test_server_restart_mid_load_finishes_every_accepted_execution(cluster: Cluster) -> None:
    effects = EffectServer()
    workers = [cluster.start_worker(concurrency=50) for _ in range(2)]
    _, api_url = cluster.start_api()
    run = steady_submissions_around(cluster, effects, api_url, cluster.stop_server, cluster.start_server)
    states = cluster.wait_final(list(run.accepted), timeout=120 + EXECUTIONS * 2)
    for worker in workers:
        worker.stop()
    effects.close()

    assert Counter(states.values()) == {"COMPLETED": len(run.accepted)}  # every id given out was real and finished
    assert repeated_effects(effects, run.accepted) == []
    # The commit point is flowdeck's outbox, not Prefect (docs/architecture.md): while the
    # server is down, submissions are still answered with an id, and run once it is back.
    assert run.refused == [], run.refused[:3]
    assert len(run.accepted) == EXECUTIONS
    report(
        "server_restart",
        {
            "accepted": len(run.accepted),
            "refused_while_down": len(run.refused),
            "server_down_seconds": round(run.fault_seconds, 1),
        },
    )


def test_redis_killed_mid_load_finishes_every_accepted_execution(
    cluster_with_own_redis: tuple[Cluster, RedisServer],
) -> None:
    """Redis carries Prefect's messaging and the result storage (journals and outputs). It is
    killed with `kill -9` and restarted 3 s later from its append-only file."""
    cluster, redis_server = cluster_with_own_redis
    effects = EffectServer()
    workers = [cluster.start_worker(concurrency=50) for _ in range(2)]
    _, api_url = cluster.start_api()
    run = steady_submissions_around(cluster, effects, api_url, redis_server.kill, redis_server.start)
    states = cluster.wait_final(list(run.accepted), timeout=180 + EXECUTIONS * 2)
    with cluster.prefect() as client:
        runs_in_prefect = cluster.count(client, {"tags": {"all_": ["flowdeck"]}})
    for worker in workers:
        worker.stop()
    effects.close()
    report(
        "redis_killed",
        {
            "runs_in_prefect": runs_in_prefect,
            "accepted": len(run.accepted),
            "refused_while_down": len(run.refused),
            "redis_down_seconds": round(run.fault_seconds, 1),
            "final_states": dict(Counter(states.values())),
            "side_effects_not_exactly_once": len(repeated_effects(effects, run.accepted)),
            "refusals": dict(Counter(status for status, _ in run.refused)),
            "refusal_example": run.refused[0][1][:300] if run.refused else None,
        },
    )
    assert Counter(states.values()) == {"COMPLETED": len(run.accepted)}
    assert repeated_effects(effects, run.accepted) == []
    assert runs_in_prefect == len(run.accepted)  # a refused submission left no run behind
    for status, body in run.refused:
        assert status == 503 and "execution_id" not in body, (status, body)
