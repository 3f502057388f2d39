"""Sync mode: run a workflow in the calling process and answer with its outcome.

Latency is the point of sync mode (an agent waits mid-call), so Prefect is off the
critical path entirely; the outbox (`flowdeck.store.outbox`, a local SQLite file) is the
commit point:
- the execution id is minted here and the execution committed to the outbox before the
  first step with side effects (http, code, action, workflow) runs, so nothing reaches
  the outside world for an execution that a crash could lose;
- each finished step's journal entry and task-run events are appended as it ends, and
  committed at the latest before the next step with side effects and before the answer:
  a takeover after a crash continues after the last finished step;
- the answer waits for the outbox (a fraction of a millisecond, grouped with the other
  calls of the same loop tick), never for Prefect: the drain (`flowdeck.store.drain`)
  writes the flow run, its task runs and its final state behind it. `SyncCall.finish`
  waits for that drain (bounded; the CLI awaits it before exiting; the API, a long-lived
  process with its drainer running, does not); what is not drained then is written by
  the next flowdeck process.

At the sync limit (or at a Wait that cannot finish within it) the execution is handed off:
the hand-off entry carries the journal, the drain writes it to result storage and then
reschedules the flow run for a worker; the caller gets `running`/`waiting` with the
execution id to poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from flowdeck import settings
from flowdeck.definition.model import Step, WaitStep, WorkflowDefinition
from flowdeck.errors import StepError
from flowdeck.execution import pinning
from flowdeck.execution.hooks import RecordedHooks
from flowdeck.runtime.interpreter import JournalEntry, Run, WorkflowResolver
from flowdeck.store import encoding
from flowdeck.store.drain import Drainer
from flowdeck.store.events import TaskRunEvents
from flowdeck.store.outbox import Outbox

EFFECT_STEP_TYPES = {"http", "code", "action", "workflow"}


class _Handoff(Exception):
    def __init__(self, status: str, resume_at: datetime | None, step_name: str | None = None) -> None:
        self.status = status
        self.resume_at = resume_at
        self.step_name = step_name


@dataclass
class SyncHooks(RecordedHooks):
    definition: WorkflowDefinition
    events: TaskRunEvents
    outbox: Outbox
    execution_id: str
    deadline: float  # loop time
    journal: dict[str, JournalEntry] = field(default_factory=dict)

    async def step_started(self, key: str, step: Step) -> None:
        if step.type in EFFECT_STEP_TYPES:
            # the commit point: the execution and every step before this one are on disk
            # before anything reaches the outside world
            await self.outbox.committed()
        self.events.started(key, step)

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        entry = JournalEntry(status="done", output=output)
        self.journal[key] = entry
        self.outbox.append(self.execution_id, "step", {"key": key, "entry": entry.to_json()})
        self.events.finished(key, output)

    async def wait(self, key: str, step: WaitStep, started_at: datetime, due_at: datetime) -> None:
        remaining = self.deadline - asyncio.get_running_loop().time()
        delay = (due_at - datetime.now(UTC)).total_seconds()
        if delay > remaining:
            self.journal[key] = JournalEntry(
                status="waiting", started_at=started_at.isoformat(), due_at=due_at.isoformat()
            )
            raise _Handoff("waiting", due_at, step.name)
        await asyncio.sleep(max(0.0, delay))


@dataclass
class SyncCall:
    """The answer of a sync call, and the bookkeeping still owed to Prefect."""

    body: dict[str, Any]
    execution_id: str
    finish: Callable[[], Awaitable[None]]


def created_payload(
    definition: WorkflowDefinition,
    execution_id: str,
    input_data: dict[str, Any],
    *,
    mode: str,
    trigger: dict[str, Any] | None,
    source: dict[str, str] | None,
) -> dict[str, Any]:
    """The outbox's `created` entry: everything the drain needs to make the flow run, and
    the definition's content, so that the execution runs the definition it started with
    whatever happens to the file meanwhile."""
    context: dict[str, Any] = {"mode": mode, "trigger": trigger or {"type": "manual"}}
    if source is not None:
        context["definition"] = source
    return {
        "flow_name": definition.id,
        "name": encoding.flow_run_name(definition),
        "parameters": input_data,
        "tags": encoding.run_tags(definition, mode),
        "context": {"flowdeck": context},
        # the pin: proof for a worker that flowdeck itself created this run (execution/pinning.py)
        "labels": {
            **encoding.first_attempt_labels(execution_id),
            **pinning.pin_labels(definition, input_data, context.get("definition")),
        },
        "flow_version": str(definition.version),
        "started_at": datetime.now(UTC).isoformat(),
    }


async def run_sync(
    definition: WorkflowDefinition,
    input_data: dict[str, Any],
    *,
    outbox: Outbox,
    drainer: Drainer,
    http: httpx.AsyncClient | None = None,
    resolve_workflow: WorkflowResolver | None = None,
    sync_timeout: float | None = None,
    trigger: dict[str, Any] | None = None,
    source: dict[str, str] | None = None,
) -> SyncCall:
    """Execute `definition` now; input must already be validated."""
    loop = asyncio.get_running_loop()
    limit = sync_timeout or definition.sync_timeout or settings.sync_timeout_default()
    deadline = loop.time() + limit
    execution_id = encoding.mint_execution_id()
    payload = created_payload(definition, execution_id, input_data, mode="sync", trigger=trigger, source=source)
    outbox.create(
        execution_id,
        mode="sync",
        workflow_id=definition.id,
        version=definition.version,
        status="running",
        payload=payload,
    )
    drainer.start()

    def sink(kind: str, data: dict[str, Any]) -> None:
        outbox.append(execution_id, kind, data)

    events = TaskRunEvents(definition=definition, mode="sync", sink=sink)
    hooks = SyncHooks(definition=definition, events=events, outbox=outbox, execution_id=execution_id, deadline=deadline)
    run = Run(
        definition=definition,
        execution_id=execution_id,
        mode="sync",
        input=input_data,
        hooks=hooks,
        trigger=trigger,
        resolve_workflow=resolve_workflow,
        http=http,
    )
    body_task = asyncio.create_task(run.execute())
    try:
        outcome = await asyncio.wait_for(asyncio.shield(body_task), timeout=max(0.0, deadline - loop.time()))
        handoff: _Handoff | None = None
    except TimeoutError:
        body_task.cancel()
        try:
            await body_task
        except (asyncio.CancelledError, _Handoff, Exception):
            pass
        handoff = _Handoff("running", None)
        outcome = None
    except _Handoff as raised:
        handoff = raised
        outcome = None

    async def finish() -> None:
        await drainer.flush(execution_id)

    if handoff is not None:
        # The step in progress stays open in Prefect; the worker that continues the
        # execution closes the same task run (or runs the interrupted step again in it).
        opened = events.detach_open()
        for key, record in opened.items():
            earlier = hooks.journal.get(key)
            hooks.journal[key] = JournalEntry(
                status=earlier.status if earlier else "interrupted",
                started_at=earlier.started_at if earlier else record.started_at(),
                due_at=earlier.due_at if earlier else None,
                task_run_id=str(record.task_run_id),
            )
        events.log(None, 20, f"sync limit ({limit:g} s) reached: continuing in async mode ({handoff.status})")
        outbox.append(
            execution_id,
            "handoff",
            {
                "status": handoff.status,
                "resume_at": handoff.resume_at.isoformat() if handoff.resume_at else None,
                # the Wait, or the step still running at the limit (its task run may reach
                # Prefect after the state; the state names it: encoding.handed_off_state)
                "step_name": handoff.step_name or next((r.name for r in reversed(opened.values())), None),
                "journal": {key: entry.to_json() for key, entry in hooks.journal.items()},
            },
            status=handoff.status,
            close=True,
        )
        await outbox.committed()
        body: dict[str, Any] = {"status": handoff.status, "execution_id": execution_id}
        if handoff.resume_at is not None:
            body["resume_at"] = handoff.resume_at.isoformat()
        return SyncCall(body=body, execution_id=execution_id, finish=finish)

    assert outcome is not None
    outbox.append(
        execution_id,
        "final",
        {"status": outcome.status, "error": outcome.error, "record": outcome.record()},
        status=outcome.status,
        close=True,
    )
    await outbox.committed()
    return SyncCall(body=outcome.body(execution_id), execution_id=execution_id, finish=finish)


__all__ = ["SyncCall", "created_payload", "run_sync", "StepError"]
