"""How an execution shows up in Prefect: one flow run, one task run per executed step.

Flow runs are written through the REST API (they carry the execution id and the state).
Task runs are written the way Prefect's own task engine writes them: state-change events
that the server's task-run recorder turns into task runs; emitting one costs microseconds
and never waits on the database. Step outputs and final results go to Prefect's result
storage, so any process (any machine, with shared storage) can read them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from prefect._internal.compatibility.blocks import call_explicitly_async_block_method
from prefect.client.schemas.objects import TaskRun
from prefect.events import emit_event
from prefect.results import ResultRecord, ResultStore, get_default_result_storage
from prefect.serializers import JSONSerializer
from prefect.states import Completed, Failed, Running, State
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flowdeck.errors import PrefectUnavailable
from flowdeck.runtime.interpreter import Hooks
from flowdeck.definition.model import Step, WorkflowDefinition

FLOWDECK_TAG = "flowdeck"
RUNNING_EVENT_AFTER = 0.2  # seconds


def execution_id_for(flow_run_id: UUID) -> str:
    return f"exec_{flow_run_id.hex}"


def flow_run_id_for(execution_id: str) -> UUID | None:
    """The Prefect flow run id inside an execution id, or None when it is not one."""
    if not execution_id.startswith("exec_"):
        return None
    try:
        return UUID(hex=execution_id[len("exec_"):])
    except ValueError:
        return None


def run_tags(definition: WorkflowDefinition, mode: str) -> list[str]:
    return [
        FLOWDECK_TAG,
        f"workflow:{definition.id}",
        f"version:{definition.version}",
        f"mode:{mode}",
    ]


def flow_run_name(definition: WorkflowDefinition) -> str:
    return f"{definition.id} v{definition.version}"


_store: ResultStore | None = None


def result_store() -> ResultStore:
    """Prefect's default result storage ($PREFECT_HOME/storage or the configured block)."""
    global _store
    if _store is None:
        _store = ResultStore(
            result_storage=get_default_result_storage(_sync=True),  # type: ignore[call-arg]
            serializer=JSONSerializer(),
            cache_result_in_memory=False,
        )
    return _store


def journal_key(flow_run_id: UUID, step_key: str) -> str:
    return f"flowdeck-{flow_run_id.hex}-step-{step_key}"


def outcome_key(flow_run_id: UUID) -> str:
    return f"flowdeck-{flow_run_id.hex}-outcome"


# How long a journal or outcome write (or a journal read, on resume) waits for a result
# storage that cannot be reached (a Redis restarting, say) before the attempt gives up.
STORAGE_PATIENCE_SECONDS = 60.0
# Errors that mean "cannot reach the storage now", as opposed to a record that is missing
# or cannot be serialized.
_UNREACHABLE = (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)


async def _patiently(operation: Callable[[], Awaitable[Any]], what: str, patience: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.05
    while True:
        try:
            return await operation()
        except _UNREACHABLE as error:
            if loop.time() >= deadline:
                raise PrefectUnavailable(
                    f"the result storage cannot be reached ({what}): {error}; "
                    "check it is running (`flowdeck storage show` names it)"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def write_record(key: str, value: Any, patience: float = STORAGE_PATIENCE_SECONDS) -> ResultRecord[Any]:
    store = result_store()
    record = store.create_result_record(value, key=key)
    await _patiently(lambda: store.apersist_result_record(record), f"writing {key}", patience)
    return record


async def read_record(key: str, patience: float = STORAGE_PATIENCE_SECONDS) -> Any | None:
    """The record's value, or None if there is none. One read: Prefect's `exists` reads the
    whole record too, and answers False on any error, which would take a storage that is
    down for a missing journal entry and run a finished step again."""
    storage = result_store().result_storage

    async def read() -> bytes | None:
        try:
            return await call_explicitly_async_block_method(storage, "read_path", (key,), {})
        except (ValueError, FileNotFoundError, KeyError):  # missing (a local file, for one)
            return None

    content = await _patiently(read, f"reading {key}", patience)
    if not content:
        return None
    return ResultRecord.deserialize(content, backup_serializer=JSONSerializer()).result


@dataclass
class _StepRecord:
    task_run: TaskRun
    running: State[Any]
    running_sent: bool = False
    timer: asyncio.TimerHandle | None = None


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
    _open: dict[str, _StepRecord] = field(default_factory=dict)
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
            _send_log({**entry, "flow_run_id": str(flow_run_id)})
        self._pending_logs.clear()

    def _emit(self, task_run: TaskRun, initial: State[Any] | None, validated: State[Any]) -> None:
        if self.flow_run_id is None:
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

        emit_event(
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
                        "id", "created", "updated", "flow_run_id", "state_id", "state_type",
                        "state_name", "state", "estimated_start_time_delta", "estimated_run_time",
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
                    "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id}",
                    "prefect.resource.role": "flow-run",
                    "prefect.resource.name": flow_run_name(self.definition),
                },
                *(
                    {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
                    for tag in sorted(task_run.tags)
                ),
            ],
        )

    def started(
        self, key: str, step: Step, *, task_run_id: UUID | None = None, since: datetime | None = None
    ) -> UUID:
        """Open a task run for a step (or re-open the one a suspended Wait left open)."""
        now = since or datetime.now(timezone.utc)
        task_run = TaskRun(
            id=task_run_id or uuid4(),
            name=step.name if "." not in key else f"{key}",
            flow_run_id=self.flow_run_id,
            task_key=f"flowdeck.{self.definition.id}.{step.type}",
            dynamic_key=key,
            tags=run_tags(self.definition, self.mode) + [f"step:{step.type}"],
            expected_start_time=now,
            start_time=now,
            run_count=1,
        )
        running = Running(timestamp=now)
        running.state_details.task_run_id = task_run.id
        running.state_details.flow_run_id = self.flow_run_id
        task_run.state = running
        record = _StepRecord(task_run, running, running_sent=task_run_id is not None)
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
        now = datetime.now(timezone.utc)
        if failed_message is None:
            final: State[Any] = Completed(timestamp=now)
        else:
            final = Failed(timestamp=now, message=failed_message)
        final.state_details.task_run_id = record.task_run.id
        final.state_details.flow_run_id = self.flow_run_id
        task_run = record.task_run.model_copy()
        task_run.end_time = now
        task_run.total_run_time = now - (record.task_run.start_time or now)
        task_run.state = final
        self._emit(task_run, record.running if record.running_sent else None, final)

    def detach_open(self) -> dict[str, _StepRecord]:
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
        entry = {
            "name": "flowdeck",
            "level": level,
            "message": message,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "task_run_id": str(record.task_run.id) if record else None,
        }
        if self.flow_run_id is None:
            self._pending_logs.append(entry)
        else:
            _send_log({**entry, "flow_run_id": str(self.flow_run_id)})

    def abandon_open(self, message: str) -> None:
        for key in list(self._open):
            self.finished(key, None, failed_message=message)


def _send_log(entry: dict[str, Any]) -> None:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.instance().send(entry)


class RecordedHooks(Hooks):
    """What sync and async hooks share: steps' failures and log lines go to Prefect
    through the execution's `TaskRunEvents` (the subclass's `events`)."""

    events: TaskRunEvents

    def log(self, key: str | None, level: int, message: str) -> None:
        self.events.log(key, level, message)

    async def step_failed(self, key: str, step: Step, message: str) -> None:
        self.events.log(key, 40, f"step '{step.name}' failed: {message}")
        self.events.finished(key, None, failed_message=message)


async def flush_events(timeout: float = 5.0) -> None:
    """Wait until emitted events and logs have left the process (call before it exits)."""
    import logging

    from prefect.events.worker import EventsWorker

    # Its "still processing items" progress note is noise on a CLI's stderr.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
    logging.getLogger("APILogWorker").setLevel(logging.ERROR)
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        result = service.drain_all(timeout=timeout)
        if asyncio.iscoroutine(result):
            await result
