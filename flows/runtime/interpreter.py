"""Walks a validated workflow's steps: the semantics of the YAML, apart from where it runs.

The interpreter knows nothing about Prefect, processes or modes. What differs between a
sync call, an async worker and a plain-Python benchmark is injected as `Hooks`: how a step
is recorded, how a Wait waits (block, suspend or hand off), what earlier attempts already
finished (the journal that makes retries and resumes skip finished steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from flowdeck.definition import expressions
from flowdeck.definition.model import (
    ActionStep,
    CodeStep,
    ConditionStep,
    FailStep,
    HttpStep,
    NoteStep,
    OutputStep,
    Step,
    WaitStep,
    WorkflowCallStep,
    WorkflowDefinition,
)
from flowdeck.errors import FlowdeckError, StepError
from flowdeck.runtime.steps.action import run_action
from flowdeck.runtime.steps.code import run_code
from flowdeck.runtime.steps.http import run_http


@dataclass(frozen=True)
class Outcome:
    """How an execution ended: `success` with `output`, or `failed` with `error`."""

    status: str
    output: dict[str, Any] | None = None
    error: dict[str, str | None] | None = None  # {step_name (None: not in a step), message}
    retryable: bool = False  # a step error (retried per policy), not a `fail` step

    def record(self) -> dict[str, Any]:
        """What is persisted as the execution's result."""
        if self.status == "success":
            return {"status": "success", "output": self.output}
        return {"status": self.status, "error": self.error}

    def body(self, execution_id: str) -> dict[str, Any]:
        """The documented response body."""
        if self.status == "success":
            return {"status": "success", "execution_id": execution_id, "output": self.output}
        return {"status": self.status, "execution_id": execution_id, "error": self.error}


@dataclass(frozen=True)
class JournalEntry:
    """What is known of one step from earlier attempts or before a suspension."""

    status: str  # "done" | "waiting"
    output: Any = None
    started_at: str | None = None  # waits: when the timer started (ISO-8601)
    due_at: str | None = None  # waits: when it fires
    task_run_id: str | None = None  # waits: the task run that stays open while suspended

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(**data)


class Hooks:
    """The places where running a workflow touches the world outside the YAML.

    The defaults run everything in memory: plain Python, no recording, waits sleep.
    """

    async def recall(self, key: str) -> JournalEntry | None:
        return None

    async def step_started(self, key: str, step: Step) -> None:
        return None

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        return None

    async def step_failed(self, key: str, step: Step, message: str) -> None:
        return None

    async def checkpoint(self, key: str, step: Step) -> None:
        """Called before each step: raise to stop (cancelled, timed out, sync limit)."""
        return None

    def log(self, key: str | None, level: int, message: str) -> None:
        """A line for the run's log (code-step output, failures, suspensions)."""
        return None

    def now(self) -> datetime:
        """The execution's clock: when a Wait starts (workflow tests run on a virtual one)."""
        return datetime.now(UTC)

    async def wait(self, key: str, step: WaitStep, started_at: datetime, due_at: datetime) -> None:
        """Return once `due_at` has passed (or raise to suspend / hand off)."""
        import asyncio

        await asyncio.sleep(max(0.0, (due_at - self.now()).total_seconds()))


class EndExecution(Exception):
    """Ends the execution with `outcome`, unwinding nested blocks: raised by output and fail
    steps, and by a hook's `checkpoint` that decides a step's outcome itself (a test mock)."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


WorkflowResolver = Callable[[str, "str | int"], WorkflowDefinition]
# Validation refuses cycles of workflow calls; this is the last line of defence (a cycle
# that only a change of definitions in flight could make): a clear step failure, never a
# RecursionError.
MAX_CALL_DEPTH = 20


@dataclass
class Run:
    """One execution in progress."""

    definition: WorkflowDefinition
    execution_id: str
    mode: str
    input: dict[str, Any]
    hooks: Hooks = field(default_factory=Hooks)
    trigger: dict[str, Any] | None = None
    resolve_workflow: WorkflowResolver | None = None
    http: httpx.AsyncClient | None = None  # None (plain Python): the run opens one of its own
    call_depth: int = 0  # workflow steps between the execution and this run
    ctx: dict[str, Any] = field(init=False)
    _own_http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ctx = {
            "input": self.input,
            "trigger": self.trigger or {"type": "manual"},
            "execution": {
                "id": self.execution_id,
                "workflow_id": self.definition.id,
                "version": self.definition.version,
                "mode": self.mode,
            },
        }

    async def execute(self) -> Outcome:
        """Run the steps; step failures become a failed Outcome, other errors propagate."""
        try:
            await self._run_block(self.definition.steps, self.ctx, prefix="")
        except EndExecution as ended:
            return ended.outcome
        finally:
            await self._close_own_http()
        return Outcome(status="success", output={})

    def _http_client(self) -> httpx.AsyncClient:
        """The client the engine gave; without one, a client for this run (closed at its end)."""
        if self.http is None:
            self.http = self._own_http = httpx.AsyncClient(follow_redirects=True)
        return self.http

    async def _close_own_http(self) -> None:
        if self._own_http is not None:
            client, self._own_http = self._own_http, None
            if self.http is client:
                self.http = None
            await client.aclose()

    async def _run_block(self, steps: tuple[Step, ...], ctx: dict[str, Any], prefix: str) -> None:
        for step in steps:
            await self._run_step(step, ctx, prefix)

    async def _run_step(self, step: Step, ctx: dict[str, Any], prefix: str) -> None:
        key = prefix + step.id
        remembered = await self.hooks.recall(key)
        if remembered is not None and remembered.status == "done":
            self._remember(ctx, step, remembered.output)
            if isinstance(step, ConditionStep):
                await self._run_block(self._branch_steps(step, remembered.output), ctx, prefix)
            return
        await self.hooks.checkpoint(key, step)
        await self.hooks.step_started(key, step)
        try:
            output = await self._perform(step, ctx, key, remembered)
        except EndExecution as ended:
            if ended.outcome.status == "success":
                await self.hooks.step_finished(key, step, ended.outcome.output)
            else:
                message = (ended.outcome.error or {}).get("message", "failed")
                message = "failed" if message is None else message
                await self.hooks.step_failed(key, step, message)
            raise
        except StepError as error:
            await self.hooks.step_failed(key, step, error.message)
            raise EndExecution(
                Outcome(
                    status="failed",
                    error={"step_name": step.name, "message": error.message},
                    retryable=True,
                )
            ) from None
        await self.hooks.step_finished(key, step, output)
        self._remember(ctx, step, output)
        if isinstance(step, ConditionStep):
            await self._run_block(self._branch_steps(step, output), ctx, prefix)

    @staticmethod
    def _remember(ctx: dict[str, Any], step: Step, output: Any) -> None:
        ctx[step.id] = output
        ctx[step.name] = output

    @staticmethod
    def _branch_steps(step: ConditionStep, branch_name: str | None) -> tuple[Step, ...]:
        for branch in step.branches:
            if branch.name == branch_name:
                return branch.steps
        return step.default

    async def _perform(self, step: Step, ctx: dict[str, Any], key: str, remembered: JournalEntry | None) -> Any:
        if isinstance(step, NoteStep):
            return None
        if isinstance(step, OutputStep):
            fields = await expressions.render_async(step.fields, ctx)
            raise EndExecution(Outcome(status="success", output=fields))
        if isinstance(step, FailStep):
            message = await expressions.render_async(step.message, ctx)
            if not isinstance(message, str):
                message = "failed" if message is None else str(message)
            raise EndExecution(Outcome(status="failed", error={"step_name": step.name, "message": message}))
        if isinstance(step, ConditionStep):
            for branch in step.branches:
                if expressions.is_truthy(await expressions.evaluate_async(branch.when, ctx)):
                    return branch.name
            return None
        if isinstance(step, WaitStep):
            return await self._wait(step, ctx, key, remembered)
        if isinstance(step, HttpStep):
            return await run_http(
                method=step.method,
                url=await expressions.render_async(step.url, ctx),
                headers=await expressions.render_async(step.headers, ctx),
                query=await expressions.render_async(step.query, ctx),
                body=await expressions.render_async(step.body, ctx),
                timeout=step.timeout,
                fail_on_status=step.fail_on_status,
                client=self._http_client(),
            )
        if isinstance(step, CodeStep):
            return await run_code(
                step.code,
                ctx,
                timeout=step.timeout,
                memory_mb=step.memory_mb,
                on_logs=lambda text: self.hooks.log(key, 20, f"{step.name} printed:\n{text}"),
            )
        if isinstance(step, ActionStep):
            return await run_action(step.uses, await expressions.render_async(step.with_, ctx))
        if isinstance(step, WorkflowCallStep):
            return await self._call_workflow(step, ctx, key)
        raise StepError(f"unsupported step type {type(step).__name__}")

    async def _wait(
        self, step: WaitStep, ctx: dict[str, Any], key: str, remembered: JournalEntry | None
    ) -> dict[str, Any]:
        if remembered is not None and remembered.status == "waiting":
            started_at = datetime.fromisoformat(remembered.started_at or "")
            due_at = datetime.fromisoformat(remembered.due_at or "")
        else:
            started_at = self.hooks.now()
            if step.duration is not None:
                due_at = datetime.fromtimestamp(started_at.timestamp() + step.duration, UTC)
            else:
                due_at = _parse_time(await expressions.evaluate_async(step.until or "", ctx), step)
        await self.hooks.wait(key, step, started_at, due_at)
        waited = max(0.0, (max(due_at, started_at) - started_at).total_seconds())
        return {"waited_seconds": round(waited, 3) if waited % 1 else int(waited)}

    async def _call_workflow(self, step: WorkflowCallStep, ctx: dict[str, Any], key: str) -> Any:
        if self.resolve_workflow is None:
            raise StepError("workflow steps need a catalog to resolve the called workflow")
        if self.call_depth >= MAX_CALL_DEPTH:
            raise StepError(f"workflow calls nest deeper than {MAX_CALL_DEPTH} levels (a cycle of calls?)")
        try:
            child_definition = self.resolve_workflow(step.workflow_id, step.version)
        except FlowdeckError as error:
            raise StepError(error.message) from None
        child_input = await expressions.render_async(step.input, ctx) if step.input is not None else {}
        child = Run(
            definition=child_definition,
            execution_id=self.execution_id,
            mode=self.mode,
            input=child_input if isinstance(child_input, dict) else {"value": child_input},
            hooks=_PrefixedHooks(self.hooks, key + "."),
            trigger=self.ctx["trigger"],
            resolve_workflow=self.resolve_workflow,
            http=self.http,
            call_depth=self.call_depth + 1,
        )
        from flowdeck.runtime.inputs import validate_input

        validate_input(child_definition, child.input, as_step=True)
        outcome = await child.execute()
        if outcome.status != "success":
            failure = outcome.error or {}
            raise StepError(
                f"workflow '{child_definition.key}' failed at step "
                f"'{failure.get('step_name')}': {failure.get('message')}"
            )
        return outcome.output


class _PrefixedHooks(Hooks):
    """Hooks for a called workflow: its steps are journaled under the calling step's key."""

    def __init__(self, inner: Hooks, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    async def recall(self, key: str) -> JournalEntry | None:
        return await self.inner.recall(self.prefix + key)

    async def step_started(self, key: str, step: Step) -> None:
        await self.inner.step_started(self.prefix + key, step)

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        await self.inner.step_finished(self.prefix + key, step, output)

    async def step_failed(self, key: str, step: Step, message: str) -> None:
        await self.inner.step_failed(self.prefix + key, step, message)

    async def checkpoint(self, key: str, step: Step) -> None:
        await self.inner.checkpoint(self.prefix + key, step)

    def log(self, key: str | None, level: int, message: str) -> None:
        self.inner.log(self.prefix + key if key else None, level, message)

    async def wait(self, key: str, step: WaitStep, started_at: datetime, due_at: datetime) -> None:
        await self.inner.wait(self.prefix + key, step, started_at, due_at)


def _parse_time(value: Any, step: WaitStep) -> datetime:
    if not isinstance(value, str):
        raise StepError(f"wait step '{step.name}': `until` gave {value!r}, not an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StepError(f"wait step '{step.name}': `until` gave {value!r}, not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
