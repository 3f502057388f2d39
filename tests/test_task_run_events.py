"""The task-run events flowdeck builds by hand (flowdeck.store.events) are what Prefect's own
models give, and what Prefect's task-run recorder turns into the task run we mean."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect.client.schemas.objects import TaskRun
from prefect.events import Event
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.server.services.task_run_recorder import task_run_from_event
from support.paths import EXAMPLE_DEFINITIONS

from flowdeck.definition.catalog import load_catalog
from flowdeck.store.events import TaskRunEvents, try_key


def emitted(body: Any) -> list[dict[str, Any]]:
    definition = load_catalog(EXAMPLE_DEFINITIONS).resolve("lookup_contact", "latest", allow_draft=False)
    sent: list[dict[str, Any]] = []

    async def go() -> None:
        events = TaskRunEvents(definition=definition, mode="sync", sink=lambda kind, event: sent.append(event))
        body(events, definition.steps)

    asyncio.run(go())
    return sent


def received(event: dict[str, Any]) -> ReceivedEvent:
    return ReceivedEvent.model_validate({**event, "received": datetime.now(UTC).isoformat()})


def test_a_quick_step_is_one_completed_event_prefect_reads_as_its_task_run() -> None:
    def body(events: TaskRunEvents, steps: list[Any]) -> None:
        events.started(steps[0].id, steps[0])
        events.finished(steps[0].id, {"ok": True})

    [event] = emitted(body)
    assert Event.model_validate(event).model_dump(mode="json") == event  # the model's own JSON
    task_run = task_run_from_event(received(event))
    assert task_run.name == event["resource"]["prefect.resource.name"]
    assert task_run.dynamic_key == event["payload"]["task_run"]["dynamic_key"]
    assert task_run.state is not None and task_run.state.type.value == "COMPLETED"
    assert task_run.start_time is not None and task_run.end_time is not None
    assert task_run.total_run_time.total_seconds() == (task_run.end_time - task_run.start_time).total_seconds()
    assert str(task_run.state.id) == event["id"]
    # every field Prefect's TaskRun would write is there, as TaskRun writes it
    written = TaskRun.model_validate(event["payload"]["task_run"]).model_dump(mode="json", exclude_none=True)
    assert {k: v for k, v in written.items() if k in event["payload"]["task_run"]} == event["payload"]["task_run"]


def test_a_slow_step_sends_running_then_its_failure_from_running() -> None:
    def body(events: TaskRunEvents, steps: list[Any]) -> None:
        events.attempt = 2
        events.started(steps[0].id, steps[0])
        events.ensure_running(steps[0].id)
        events.finished(steps[0].id, None, failed_message="HTTP 500 from the CRM")

    running, failed = emitted(body)
    for event in (running, failed):
        assert Event.model_validate(event).model_dump(mode="json") == event
    assert running["payload"]["initial_state"] is None and "end_time" not in running["payload"]["task_run"]
    assert failed["payload"]["intended"] == {"from": "RUNNING", "to": "FAILED"}
    task_run = task_run_from_event(received(failed))
    assert task_run.state is not None and task_run.state.message == "HTTP 500 from the CRM"
    assert task_run.dynamic_key == try_key(failed["payload"]["task_run"]["dynamic_key"].split("#")[0], 2)
    assert running["resource"]["prefect.resource.id"] == failed["resource"]["prefect.resource.id"]
    assert running["id"] != failed["id"]
