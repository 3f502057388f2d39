"""Task runs written as Prefect's own task engine writes them: state-change events that the
server's task-run recorder turns into task runs. Emitting one costs microseconds and never
waits on the database; sync calls send one event per step (its final state, with start and
end times), async executions two (Running, then the final state) so watchers see the
current step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from prefect.client.schemas.objects import TaskRunPolicy
from prefect.events import emit_event

from flowdeck.definition.model import Step, WorkflowDefinition
from flowdeck.store import encoding
from flowdeck.store.event_batches import EventBatches
from flowdeck.store.logs import log_entry, send_log

RUNNING_EVENT_AFTER = 0.2  # seconds
FLOW_RUN_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"  # an outbox event's flow run, set by the drain


TRY_SEPARATOR = "#"  # never in a step key (ids are identifiers, nested keys joined by '.')


def try_key(key: str, attempt: int) -> str:
    """A task run's dynamic key: the step key, with the attempt after the first. Prefect keeps
    one task run per (flow run, task key, dynamic key), so a step tried again after a retry
    needs a key of its own to be a task run of its own (one row per try)."""
    return key if attempt <= 1 else f"{key}{TRY_SEPARATOR}{attempt}"


def step_key_of(dynamic_key: str) -> str:
    """The step key a task run's dynamic key names (`try_key` undone)."""
    return dynamic_key.split(TRY_SEPARATOR, 1)[0]


def with_flow_run(event: dict[str, Any], flow_run_id: UUID) -> dict[str, Any]:
    """An outbox event pointed at the flow run the drain made."""
    placeholder = f"prefect.flow-run.{FLOW_RUN_PLACEHOLDER}"
    related = [
        {**r, "prefect.resource.id": f"prefect.flow-run.{flow_run_id}"}
        if r.get("prefect.resource.id") == placeholder
        else r
        for r in event.get("related", [])
    ]
    return {**event, "related": related}


# What Prefect's task-run recorder reads is JSON; building it from Prefect's pydantic models
# (TaskRun, State, Event) cost ~0.3 ms a step, most of a sync call's overhead. The dicts
# below are what those models give (`test_events.py` checks them against the models).
_TASK_RUN_DEFAULTS = {
    "empirical_policy": TaskRunPolicy().model_dump(mode="json", exclude_none=True),
    "labels": {},
    "task_inputs": {},
    "run_count": 1,
    "flow_run_run_count": 0,
}


def _json_time(moment: datetime) -> str:
    """A UTC time as pydantic writes it in JSON."""
    return moment.isoformat().replace("+00:00", "Z")


def _state_json(state_type: str, name: str, message: str | None) -> dict[str, Any]:
    return {"type": state_type, "name": name, "message": message or "", "state_details": {}}


@dataclass
class StepRecord:
    """One open step's task run, as plain data."""

    task_run_id: UUID
    name: str
    task_key: str
    dynamic_key: str
    tags: list[str]
    start: datetime
    running_sent: bool = False
    timer: asyncio.TimerHandle | None = None

    def started_at(self) -> str:
        """When the step started, as ISO text (its task run's start time)."""
        return self.start.isoformat()

    def task_run_json(self, end: datetime | None) -> dict[str, Any]:
        started = _json_time(self.start)
        body: dict[str, Any] = {
            "name": self.name,
            "task_key": self.task_key,
            "dynamic_key": self.dynamic_key,
            **_TASK_RUN_DEFAULTS,
            "tags": list(self.tags),
            "expected_start_time": started,
            "start_time": started,
        }
        if end is not None:
            body["end_time"] = _json_time(end)
            body["total_run_time"] = (end - self.start).total_seconds()
        return body


@dataclass
class TaskRunEvents:
    """Emits task-run events for the steps of one flow run: to the outbox (`sink`, sync
    mode) or, for an async execution whose flow run exists (`flow_run_id`), to Prefect."""

    definition: WorkflowDefinition
    mode: str
    flow_run_id: UUID | None = None
    # A step still running after this long gets a Running event, so watchers see the
    # current step; quicker steps send only their final event (with start and end times):
    # half the events the server has to write, for the steps that take milliseconds.
    running_event_after: float = RUNNING_EVENT_AFTER
    # Sync mode: events and log lines go to the outbox (`sink(kind, json)`), which writes
    # them to Prefect behind the caller's answer; the flow run id is filled in there.
    sink: Callable[[str, dict[str, Any]], None] | None = None
    # Async mode in a worker: events go to its batches (`flowdeck.store.event_batches`),
    # many executions' in one request; without, to Prefect's own events client.
    batches: EventBatches | None = None
    # The execution's attempt (retries count it): a step's task run in attempt n > 1 is a
    # new task run (`try_key`), so every try of a step is one in Prefect.
    attempt: int = 1
    _open: dict[str, StepRecord] = field(default_factory=dict)

    def _emit(self, record: StepRecord, state: tuple[str, str, str | None], at: datetime, *, final: bool) -> None:
        """The event Prefect's task engine sends for `record` entering `state` (type, name,
        message) at `at`, plus the flow-run link its run context would add (the server's
        task-run recorder reads the flow run from it)."""
        state_type, name, message = state
        initial = _state_json("RUNNING", "Running", None) if final and record.running_sent else None
        event_id = uuid4()  # also the task run's state id (the recorder takes it)
        event: dict[str, Any] = {
            "occurred": _json_time(at),
            "event": f"prefect.task-run.{name}",
            "resource": {
                "prefect.resource.id": f"prefect.task-run.{record.task_run_id}",
                "prefect.resource.name": record.name,
                "prefect.run-count": "1",
                "prefect.state-message": message or "",
                "prefect.state-name": name,
                "prefect.state-timestamp": at.isoformat(),
                "prefect.state-type": state_type,
                "prefect.orchestration": "client",
            },
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id or FLOW_RUN_PLACEHOLDER}",
                    "prefect.resource.role": "flow-run",
                    "prefect.resource.name": encoding.flow_run_name(self.definition),
                },
                *encoding.tag_resources(record.tags),
            ],
            "payload": {
                "intended": {"from": "RUNNING" if initial else None, "to": state_type},
                "initial_state": initial,
                "validated_state": {**_state_json(state_type, name, message), "data": None},
                "task_run": record.task_run_json(at if final else None),
            },
            "id": str(event_id),
            "follows": None,
        }
        if self.sink is not None:
            self.sink("event", event)
        elif self.batches is not None:
            self.batches.add(event)
        else:
            emit_event(
                event["event"],
                event["resource"],
                occurred=at,
                related=event["related"],
                payload=event["payload"],
                id=event_id,
            )

    def started(self, key: str, step: Step, *, task_run_id: UUID | None = None, since: datetime | None = None) -> UUID:
        """Open a task run for a step (or re-open the one a suspended Wait left open)."""
        record = StepRecord(
            task_run_id=task_run_id or uuid4(),
            name=step.name if "." not in key else f"{key}",
            task_key=f"flowdeck.{self.definition.id}.{step.type}",
            dynamic_key=try_key(key, self.attempt),
            tags=encoding.run_tags(self.definition, self.mode) + [encoding.step_tag(step.type)],
            start=since or datetime.now(UTC),
            running_sent=task_run_id is not None,
        )
        self._open[key] = record
        if not record.running_sent:
            loop = asyncio.get_running_loop()
            record.timer = loop.call_later(self.running_event_after, self.ensure_running, key)
        return record.task_run_id

    def ensure_running(self, key: str) -> None:
        """Send the step's Running event now, if it has not been sent."""
        record = self._open.get(key)
        if record is None or record.running_sent:
            return
        if record.timer is not None:
            record.timer.cancel()
        self._emit(record, ("RUNNING", "Running", None), datetime.now(UTC), final=False)
        record.running_sent = True

    def finished(self, key: str, output: Any, *, failed_message: str | None = None) -> None:
        record = self._open.pop(key, None)
        if record is None:
            return
        if record.timer is not None:
            record.timer.cancel()
        state = ("COMPLETED", "Completed", None) if failed_message is None else ("FAILED", "Failed", failed_message)
        self._emit(record, state, datetime.now(UTC), final=True)

    def detach_open(self) -> dict[str, StepRecord]:
        """Leave the open steps open in Prefect (visible as running) for whoever continues
        the execution, and return them so their task runs can be journaled."""
        for key in list(self._open):
            self.ensure_running(key)
        opened = dict(self._open)
        self._open.clear()
        return opened

    async def sent(self) -> None:
        """Once the events emitted so far have left for Prefect (batched ones: sent), so
        that the state written next never reaches Prefect ahead of its steps."""
        if self.batches is not None:
            await self.batches.flush()

    def log(self, key: str | None, level: int, message: str) -> None:
        """A run log line in Prefect (the UI's and the dashboard's log pane): code-step
        output, failures, suspensions. Batched by Prefect's own log worker."""
        record = self._open.get(key) if key else None
        entry = log_entry(level, message, record.task_run_id if record else None)
        if self.sink is not None:
            self.sink("log", entry)
        else:
            assert self.flow_run_id is not None, "an async execution's events name its flow run"
            send_log(entry, self.flow_run_id)

    def abandon_open(self, message: str) -> None:
        for key in list(self._open):
            self.finished(key, None, failed_message=message)
