"""A worker's task-run events go to Prefect in batches (flowdeck.store.event_batches): many
executions' in one request, every one recorded as its task run, none lost when a send fails."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from support.paths import EXAMPLE_DEFINITIONS

from flowdeck.definition.catalog import load_catalog
from flowdeck.store.event_batches import RETRY_SECONDS, EventBatches
from flowdeck.store.events import TaskRunEvents
from flowdeck.store.prefect_api import PrefectAPI

RUNS, STEPS = 6, 3


async def _flow_runs(api: PrefectAPI, count: int) -> list[UUID]:
    flow_id = await api.flow_id("event-batches-test")
    ids = []
    for _ in range(count):
        body = {"flow_id": str(flow_id), "state": {"type": "RUNNING"}}
        response = await api.request("POST", "/flow_runs/", json=body)
        ids.append(UUID(response.json()["id"]))
    return ids


def _steps_of(batches: EventBatches, flow_run_ids: list[UUID]) -> list[TaskRunEvents]:
    definition = load_catalog(EXAMPLE_DEFINITIONS).resolve("lookup_contact", "latest", allow_draft=False)
    step = definition.steps[0]
    runs = []
    for flow_run_id in flow_run_ids:
        events = TaskRunEvents(definition=definition, mode="async", flow_run_id=flow_run_id, batches=batches)
        for index in range(STEPS):
            events.started(f"s{index}", step)
            events.finished(f"s{index}", {"index": index})
        runs.append(events)
    return runs


async def _task_runs(api: PrefectAPI, flow_run_ids: list[UUID], expected: int) -> list[Any]:
    found: list[Any] = []
    for _ in range(100):
        found = await api.read_task_runs_of(flow_run_ids, 200)
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    return found


def test_many_executions_events_are_one_request_and_each_a_task_run(prefect_api: str) -> None:
    async def go() -> None:
        async with PrefectAPI() as api:
            flow_run_ids = await _flow_runs(api, RUNS)
            batches = EventBatches(api)
            runs = _steps_of(batches, flow_run_ids)
            before = api.counts["events"]
            await asyncio.gather(*(events.sent() for events in runs))
            assert api.counts["events"] - before == 1  # 18 events, one POST
            task_runs = await _task_runs(api, flow_run_ids, RUNS * STEPS)
            assert len(task_runs) == RUNS * STEPS
            assert {t.state_type.value for t in task_runs} == {"COMPLETED"}
            assert {t.flow_run_id for t in task_runs} == set(flow_run_ids)

    asyncio.run(go())


def test_a_failed_send_keeps_the_events_and_sends_them_again_by_itself(prefect_api: str) -> None:
    async def go() -> None:
        async with PrefectAPI() as api, PrefectAPI("http://127.0.0.1:9") as unreachable:
            flow_run_ids = await _flow_runs(api, 2)
            batches = EventBatches(unreachable)
            runs = _steps_of(batches, flow_run_ids)
            await runs[0].sent()  # fails (nothing listens there), returns, keeps them
            assert batches.pending == 2 * STEPS
            batches.api = api  # Prefect is back: the kept events go again by themselves
            await asyncio.sleep(RETRY_SECONDS + 0.5)
            assert batches.pending == 0
            await runs[1].sent()
            task_runs = await _task_runs(api, flow_run_ids, 2 * STEPS)
            assert len(task_runs) == 2 * STEPS

    asyncio.run(go())
