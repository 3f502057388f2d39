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

from prefect.client.schemas.objects import State, TaskRun
from prefect.events import Event, emit_event
from prefect.states import Completed, Failed, Running

from flowdeck.definition.model import Step, WorkflowDefinition
from flowdeck.store import encoding
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


@dataclass
class StepRecord:
    task_run: TaskRun
    running: State[Any]
    running_sent: bool = False
    timer: asyncio.TimerHandle | None = None

    def started_at(self) -> str:
        """When the step started, as ISO text (its task run's start time)."""
        return (self.task_run.start_time or self.running.timestamp).isoformat()


@dataclass
class TaskRunEvents:
    """Emits task-run events for the steps of one flow run; buffers until the id is known."""

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
    # The execution's attempt (retries count it): a step's task run in attempt n > 1 is a
    # new task run (`try_key`), so every try of a step is one in Prefect.
    attempt: int = 1
    _open: dict[str, StepRecord] = field(default_factory=dict)
    _buffer: list[tuple[TaskRun, State[Any] | None, State[Any]]] = field(default_factory=list)
    _pending_logs: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, flow_run_id: UUID) -> None:
        self.flow_run_id = flow_run_id
        for task_run, initial, validated in self._buffer:
            task_run.flow_run_id = flow_run_id
            validated.state_details.flow_run_id = flow_run_id
            self._send(task_run, initial, validated)
        self._buffer.clear()
        for entry in self._pending_logs:
            send_log(entry, flow_run_id)
        self._pending_logs.clear()

    def _emit(self, task_run: TaskRun, initial: State[Any] | None, validated: State[Any]) -> None:
        if self.sink is not None:
            self._send(task_run, initial, validated)
        elif self.flow_run_id is None:
            self._buffer.append((task_run, initial, validated))
        else:
            self._send(task_run, initial, validated)

    def _send(self, task_run: TaskRun, initial: State[Any] | None, validated: State[Any]) -> None:
        """The event Prefect's task engine sends, plus the flow-run link its run context
        would add (the server's task-run recorder reads the flow run from it)."""

        def state_json(state: State[Any]) -> dict[str, Any]:
            return {
                "type": state.type.value,
                "name": state.name,
                "message": state.message or "",
                "state_details": state.state_details.model_dump(
                    mode="json", exclude_none=True, exclude_unset=True, exclude={"flow_run_id", "task_run_id"}
                ),
            }

        event = dict(
            id=validated.id,
            occurred=validated.timestamp,
            event=f"prefect.task-run.{validated.name}",
            payload={
                "intended": {"from": initial.type.value if initial else None, "to": validated.type.value},
                "initial_state": state_json(initial) if initial else None,
                "validated_state": {**state_json(validated), "data": None},
                "task_run": task_run.model_dump(
                    mode="json",
                    exclude_none=True,
                    exclude={
                        "id",
                        "created",
                        "updated",
                        "flow_run_id",
                        "state_id",
                        "state_type",
                        "state_name",
                        "state",
                        "estimated_start_time_delta",
                        "estimated_run_time",
                    },
                ),
            },
            resource={
                "prefect.resource.id": f"prefect.task-run.{task_run.id}",
                "prefect.resource.name": task_run.name,
                "prefect.run-count": str(task_run.run_count),
                "prefect.state-message": validated.message or "",
                "prefect.state-name": validated.name or "",
                "prefect.state-timestamp": validated.timestamp.isoformat() if validated.timestamp else "",
                "prefect.state-type": validated.type.value,
                "prefect.orchestration": "client",
            },
            related=[
                {
                    "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id or FLOW_RUN_PLACEHOLDER}",
                    "prefect.resource.role": "flow-run",
                    "prefect.resource.name": encoding.flow_run_name(self.definition),
                },
                *encoding.tag_resources(task_run.tags),
            ],
        )
        if self.sink is not None:
            self.sink("event", Event.model_validate(event).model_dump(mode="json"))
        else:
            emit_event(**event)  # type: ignore[arg-type]

    def started(self, key: str, step: Step, *, task_run_id: UUID | None = None, since: datetime | None = None) -> UUID:
        """Open a task run for a step (or re-open the one a suspended Wait left open)."""
        now = since or datetime.now(UTC)
        task_run = TaskRun(
            id=task_run_id or uuid4(),
            name=step.name if "." not in key else f"{key}",
            flow_run_id=self.flow_run_id,
            task_key=f"flowdeck.{self.definition.id}.{step.type}",
            dynamic_key=try_key(key, self.attempt),
            tags=encoding.run_tags(self.definition, self.mode) + [encoding.step_tag(step.type)],
            expected_start_time=now,  # type: ignore[arg-type]  # Prefect's DateTime is a datetime
            start_time=now,  # type: ignore[arg-type]
            run_count=1,
        )
        running: State[Any] = Running(timestamp=now)
        running.state_details.task_run_id = task_run.id
        running.state_details.flow_run_id = self.flow_run_id
        task_run.state = running
        record = StepRecord(task_run, running, running_sent=task_run_id is not None)
        self._open[key] = record
        if not record.running_sent:
            loop = asyncio.get_running_loop()
            record.timer = loop.call_later(self.running_event_after, self.ensure_running, key)
        return task_run.id

    def ensure_running(self, key: str) -> None:
        """Send the step's Running event now, if it has not been sent."""
        record = self._open.get(key)
        if record is None or record.running_sent:
            return
        if record.timer is not None:
            record.timer.cancel()
        record.running_sent = True
        self._emit(record.task_run, None, record.running)

    def finished(self, key: str, output: Any, *, failed_message: str | None = None) -> None:
        record = self._open.pop(key, None)
        if record is None:
            return
        if record.timer is not None:
            record.timer.cancel()
        now = datetime.now(UTC)
        if failed_message is None:
            final: State[Any] = Completed(timestamp=now)
        else:
            final = Failed(timestamp=now, message=failed_message)
        final.state_details.task_run_id = record.task_run.id
        final.state_details.flow_run_id = self.flow_run_id
        task_run = record.task_run.model_copy()
        task_run.end_time = now  # type: ignore[assignment]
        task_run.total_run_time = now - (record.task_run.start_time or now)
        task_run.state = final
        self._emit(task_run, record.running if record.running_sent else None, final)

    def detach_open(self) -> dict[str, StepRecord]:
        """Leave the open steps open in Prefect (visible as running) for whoever continues
        the execution, and return them so their task runs can be journaled."""
        for key in list(self._open):
            self.ensure_running(key)
        opened = dict(self._open)
        self._open.clear()
        return opened

    def log(self, key: str | None, level: int, message: str) -> None:
        """A run log line in Prefect (the UI's and the dashboard's log pane): code-step
        output, failures, suspensions. Batched by Prefect's own log worker."""
        record = self._open.get(key) if key else None
        entry = log_entry(level, message, record.task_run.id if record else None)
        if self.sink is not None:
            self.sink("log", entry)
        elif self.flow_run_id is None:
            self._pending_logs.append(entry)
        else:
            send_log(entry, self.flow_run_id)

    def abandon_open(self, message: str) -> None:
        for key in list(self._open):
            self.finished(key, None, failed_message=message)
