"""Running one async execution durably: journal, suspension, retries, timeout, cancel.

Whoever hosts the execution (the flowdeck worker, or Prefect's own engine through
`flows.entrypoint`) calls `execute_flow_run` on a flow run it has claimed. Durability comes
from two places in Prefect:
- the journal: each finished step's output is written to Prefect's result storage before
  the next step starts, so a retry, a resume or a takeover after a crash skips it;
- timers are flow-run states: a Wait, a retry delay or a hand-off ends the attempt with the
  run `Scheduled` at the due time (named `Waiting` / `AwaitingRetry`), a row in Prefect's
  database that any worker picks up when it falls due, whatever died in between.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import FlowRun

from flowdeck.definition.durations import format_seconds
from flowdeck.definition.model import Step, WaitStep, WorkflowDefinition
from flowdeck.errors import StepError
from flowdeck.execution.hooks import RecordedHooks
from flowdeck.runtime.interpreter import JournalEntry, Outcome, Run, WorkflowResolver
from flowdeck.store import encoding, journal, transitions
from flowdeck.store.event_batches import EventBatches
from flowdeck.store.events import TaskRunEvents
from flowdeck.store.prefect_api import PrefectAPI
from flowdeck.store.read_model import trigger_of

# Waits shorter than this sleep in place: suspending costs two state writes and a pickup.
INLINE_WAIT_SECONDS = 0.5


class Suspend(Exception):
    def __init__(self, resume_at: datetime, step: Step) -> None:
        self.resume_at = resume_at
        self.step = step


class ExecutionCancelled(Exception):
    pass


class ExecutionTimedOut(Exception):
    def __init__(self, step: Step | None, limit: float) -> None:
        self.step = step
        self.limit = limit


@dataclass
class DurableHooks(RecordedHooks):
    api: PrefectAPI
    flow_run_id: UUID
    execution_id: str
    definition: WorkflowDefinition
    deadline: datetime
    events: TaskRunEvents
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    current_step: Step | None = None
    _recalled: dict[str, JournalEntry] = field(default_factory=dict)

    async def recall(self, key: str) -> JournalEntry | None:
        data = await journal.read_step(self.execution_id, key)
        if data is None:
            return None
        entry = JournalEntry.from_json(data)
        self._recalled[key] = entry
        return entry

    async def step_started(self, key: str, step: Step) -> None:
        self.current_step = step
        earlier = self._recalled.get(key)
        if earlier is not None and earlier.task_run_id:
            self.events.started(
                key,
                step,
                task_run_id=UUID(earlier.task_run_id),
                since=datetime.fromisoformat(earlier.started_at) if earlier.started_at else None,
            )
        else:
            self.events.started(key, step)

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        await journal.write_step(self.execution_id, key, JournalEntry(status="done", output=output).to_json())
        self.events.finished(key, output)

    async def checkpoint(self, key: str, step: Step) -> None:
        self.current_step = step
        if self.cancel_requested.is_set():
            raise ExecutionCancelled()
        if datetime.now(UTC) >= self.deadline:
            raise ExecutionTimedOut(step, self.definition.timeout)

    async def wait(self, key: str, step: WaitStep, started_at: datetime, due_at: datetime) -> None:
        delay = (due_at - datetime.now(UTC)).total_seconds()
        if delay <= INLINE_WAIT_SECONDS:
            await asyncio.sleep(max(0.0, delay))
            return
        record = self.events.detach_open().get(key)  # stays open (running) while suspended
        entry = JournalEntry(
            status="waiting",
            started_at=started_at.isoformat(),
            due_at=due_at.isoformat(),
            task_run_id=str(record.task_run_id) if record else None,
        )
        await journal.write_step(self.execution_id, key, entry.to_json())
        raise Suspend(due_at, step)


def deadline_of(flow_run: FlowRun, definition: WorkflowDefinition) -> datetime:
    """The timeout is wall clock from creation, waits and retries included."""
    created = flow_run.created or datetime.now(UTC)
    return created + timedelta(seconds=definition.timeout)


def mode_of(flow_run: FlowRun) -> str:
    return encoding.mode_of(flow_run) or "async"


@dataclass
class Disposition:
    """How an attempt ended: finished, suspended until `resume_at`, or cancelled."""

    kind: str  # "finished" | "suspended" | "retrying" | "cancelled"
    outcome: Outcome | None = None
    resume_at: datetime | None = None


async def execute_flow_run(
    api: PrefectAPI,
    flow_run: FlowRun,
    definition: WorkflowDefinition,
    *,
    http: httpx.AsyncClient | None = None,
    resolve_workflow: WorkflowResolver | None = None,
    cancel_requested: asyncio.Event | None = None,
    final_state: bool = True,
    event_batches: EventBatches | None = None,
) -> Disposition:
    """Run (or resume) a claimed flow run until it ends, suspends or is cancelled."""
    deadline = deadline_of(flow_run, definition)
    execution_id = encoding.execution_id_of(flow_run)
    events = TaskRunEvents(
        definition=definition,
        mode=mode_of(flow_run),
        flow_run_id=flow_run.id,
        attempt=encoding.attempt_of(flow_run),
        batches=event_batches,
    )
    hooks = DurableHooks(
        api=api,
        flow_run_id=flow_run.id,
        execution_id=execution_id,
        definition=definition,
        deadline=deadline,
        events=events,
        cancel_requested=cancel_requested or asyncio.Event(),
    )
    run = Run(
        definition=definition,
        execution_id=execution_id,
        mode=mode_of(flow_run),
        input=dict(flow_run.parameters or {}),
        hooks=hooks,
        trigger=trigger_of(flow_run),
        resolve_workflow=resolve_workflow,
        http=http,
    )
    remaining = (deadline - datetime.now(UTC)).total_seconds()
    try:
        if remaining > 0:
            outcome = await asyncio.wait_for(run.execute(), timeout=remaining)
        else:  # past the deadline: the first unfinished step's checkpoint says where
            outcome = await run.execute()
    except Suspend as suspended:
        resume_at = min(suspended.resume_at, deadline)
        message = encoding.waiting_message(suspended.step.name, suspended.resume_at)
        events.log(None, 20, message + " (suspended: nothing held)")
        await events.sent()
        await transitions.suspend(api, flow_run.id, suspended.step.name, suspended.resume_at, wake_at=resume_at)
        return Disposition(kind="suspended", resume_at=resume_at)
    except (ExecutionCancelled, asyncio.CancelledError):
        events.log(None, 30, "cancelled: no further step runs")
        events.abandon_open("cancelled")
        await events.sent()
        await transitions.cancel(api, flow_run.id)
        return Disposition(kind="cancelled")
    except (TimeoutError, ExecutionTimedOut):
        step = hooks.current_step
        events.log(None, 40, f"timed out after {_human(definition.timeout)} (wall clock)")
        events.abandon_open("timed out")
        outcome = Outcome(
            status="failed",
            error={
                "step_name": step.name if step else None,
                "message": f"timed out: the execution exceeded its timeout of {_human(definition.timeout)} "
                "(wall clock, waits and retries included)",
            },
        )
    except StepError as error:  # e.g. an `until` that is not a time, raised outside a step
        outcome = Outcome(status="failed", error={"step_name": None, "message": error.message}, retryable=True)

    attempt = encoding.attempt_of(flow_run)
    policy = definition.retries
    if outcome.status == "failed" and outcome.retryable and attempt <= policy.max_retries:
        retry_at = datetime.now(UTC) + timedelta(seconds=policy.delay_before(attempt + 1))
        if retry_at < deadline:
            events.log(None, 30, f"attempt {attempt} failed; attempt {attempt + 1} at {retry_at.isoformat()}")
            await events.sent()
            await transitions.retry(api, flow_run.id, attempt, retry_at, outcome.error or {})
            return Disposition(kind="retrying", outcome=outcome, resume_at=retry_at)
    await events.sent()
    await transitions.finish(api, flow_run.id, execution_id, outcome, set_final_state=final_state)
    return Disposition(kind="finished", outcome=outcome)


def _human(seconds: float) -> str:
    """A timeout as its message shows it: '1h', '90s', '1.5s'."""
    return format_seconds(seconds, milliseconds=False)
