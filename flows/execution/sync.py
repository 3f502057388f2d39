"""Sync mode: run a workflow in the calling process and answer with its outcome.

Latency is the point of sync mode (an agent waits mid-call), so Prefect is kept off the
critical path as far as durability allows:
- the flow run is created while the first steps already run; only steps with side effects
  (http, code, action, workflow) wait for it, so nothing reaches the outside world for an
  execution Prefect does not know about;
- task runs are recorded as events, buffered until the flow run exists;
- the final state and result are written after the answer (`SyncCall.finish`), which the
  caller awaits once the answer is out (the CLI before exiting, the API after responding).

At the sync limit (or at a Wait that cannot finish within it) the execution is handed off:
the finished steps are journaled, the flow run is rescheduled for a worker, and the caller
gets `running`/`waiting` with the execution id to poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import FlowRun
from prefect.states import Running

from flowdeck import settings
from flowdeck.definition.model import Step, WaitStep, WorkflowDefinition
from flowdeck.errors import StepError
from flowdeck.execution import pinning
from flowdeck.execution.hooks import RecordedHooks
from flowdeck.runtime.interpreter import JournalEntry, Outcome, Run, WorkflowResolver
from flowdeck.store import encoding, journal, transitions
from flowdeck.store.events import TaskRunEvents
from flowdeck.store.prefect_api import PrefectAPI

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
    flow_run: asyncio.Task[FlowRun]
    deadline: float  # loop time
    journal: dict[str, JournalEntry] = field(default_factory=dict)
    current_key: str | None = None

    async def step_started(self, key: str, step: Step) -> None:
        if not self.flow_run.done() and _needs_flow_run(step):
            # shielded: the sync limit cancels the steps, never the run's creation
            await asyncio.shield(self.flow_run)
        self.current_key = key
        self.events.started(key, step)

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        self.journal[key] = JournalEntry(status="done", output=output)
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


_needs_cache: dict[int, bool] = {}


def _needs_flow_run(step: Step) -> bool:
    """Steps with side effects, and steps that read `execution`, wait for the flow run."""
    cached = _needs_cache.get(id(step))
    if cached is None:
        cached = step.type in EFFECT_STEP_TYPES or "execution" in _roots_read(step)
        _needs_cache[id(step)] = cached
    return cached


def _roots_read(step: Step) -> set[str]:
    from flowdeck.definition import expressions

    values: list[Any] = []
    for name in ("fields", "message", "until"):
        values.append(getattr(step, name, None))
    for branch in getattr(step, "branches", ()):
        values.append("{{" + branch.when + "}}")
    roots: set[str] = set()
    for text in expressions.template_expressions(values):
        roots |= expressions.referenced_roots(text)
    return roots


@dataclass
class SyncCall:
    """The answer of a sync call, and the bookkeeping still owed to Prefect."""

    body: dict[str, Any]
    execution_id: str
    finish: Callable[[], Awaitable[None]]


async def run_sync(
    definition: WorkflowDefinition,
    input_data: dict[str, Any],
    *,
    api: PrefectAPI,
    http: httpx.AsyncClient | None = None,
    resolve_workflow: WorkflowResolver | None = None,
    sync_timeout: float | None = None,
    trigger: dict[str, Any] | None = None,
) -> SyncCall:
    """Execute `definition` now; input must already be validated."""
    loop = asyncio.get_running_loop()
    limit = sync_timeout or definition.sync_timeout or settings.sync_timeout_default()
    deadline = loop.time() + limit
    started = datetime.now(UTC)
    flow_run_task = asyncio.create_task(
        api.create_flow_run(
            flow_name=definition.id,
            name=encoding.flow_run_name(definition),
            parameters=input_data,
            state=Running(timestamp=started),
            tags=encoding.run_tags(definition, "sync"),
            context={"flowdeck": {"mode": "sync", "trigger": trigger or {"type": "manual"}}},
            # the pin: proof for a worker that flowdeck itself created this run (execution/pinning.py)
            labels={**encoding.first_attempt_labels(), **pinning.pin_labels(definition, input_data)},
            flow_version=str(definition.version),
        )
    )
    events = TaskRunEvents(definition=definition, mode="sync")
    hooks = SyncHooks(definition=definition, events=events, flow_run=flow_run_task, deadline=deadline)
    # The execution id is the flow run id; it is only needed once the run ends, so steps
    # without side effects run while Prefect is still creating it.
    run = Run(
        definition=definition,
        execution_id="",
        mode="sync",
        input=input_data,
        hooks=hooks,
        trigger=trigger,
        resolve_workflow=resolve_workflow,
        http=http,
    )

    # Expressions may read execution.id, so it is filled in before the first step.
    body_task = asyncio.create_task(_execute_with_id_early(run, flow_run_task, hooks))
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

    flow_run = await flow_run_task
    events.attach(flow_run.id)
    execution_id = encoding.execution_id_for(flow_run.id)

    if handoff is not None:
        # The step in progress stays open in Prefect; the worker that continues the
        # execution closes the same task run (or runs the interrupted step again in it).
        for key, record in events.detach_open().items():
            earlier = hooks.journal.get(key)
            hooks.journal[key] = JournalEntry(
                status=earlier.status if earlier else "interrupted",
                started_at=earlier.started_at if earlier else record.started_at(),
                due_at=earlier.due_at if earlier else None,
                task_run_id=str(record.task_run.id),
            )
        events.log(None, 20, f"sync limit ({limit:g} s) reached: continuing in async mode ({handoff.status})")
        await _hand_off(api, flow_run.id, hooks.journal, handoff)
        body: dict[str, Any] = {"status": handoff.status, "execution_id": execution_id}
        if handoff.resume_at is not None:
            body["resume_at"] = handoff.resume_at.isoformat()

        async def finish_nothing() -> None:
            return None

        return SyncCall(body=body, execution_id=execution_id, finish=finish_nothing)

    assert outcome is not None
    body = outcome.body(execution_id)

    async def finish() -> None:
        await transitions.finish(api, flow_run.id, outcome)

    return SyncCall(body=body, execution_id=execution_id, finish=finish)


async def _execute_with_id_early(run: Run, flow_run_task: asyncio.Task[FlowRun], hooks: SyncHooks) -> Outcome:
    def fill_id(task: asyncio.Task[FlowRun]) -> None:
        if not task.cancelled() and task.exception() is None:
            run.ctx["execution"]["id"] = encoding.execution_id_for(task.result().id)

    flow_run_task.add_done_callback(fill_id)
    return await run.execute()


async def _hand_off(
    api: PrefectAPI, flow_run_id: UUID, journal_entries: dict[str, JournalEntry], handoff: _Handoff
) -> None:
    """Make the execution durable and give it to the async workers."""
    await asyncio.gather(
        *(journal.write_step(flow_run_id, key, entry.to_json()) for key, entry in journal_entries.items())
    )
    if handoff.status == "waiting" and handoff.resume_at is not None:
        await transitions.suspend(api, flow_run_id, handoff.step_name or "wait", handoff.resume_at)
    else:
        await transitions.hand_off(api, flow_run_id)


__all__ = ["SyncCall", "run_sync", "StepError"]
