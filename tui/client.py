"""The one door from the dashboard to the engine and Prefect.

Screens never import the engine or prefect; they call a `Client`. Two implementations:

    EngineClient   the real engine (`flowdeck.execution.service.Flowdeck`) and its read
                   model (`flowdeck.store.read_model`): no Prefect call of its own
    FixedClient    (tui/fixed.py) the same answers from fixed data, for snapshot tests

Everything here returns plain dataclasses and dicts; every failure the user can cause or
meet (Prefect down, bad input, unknown id) is raised as `ClientError` with a message that
can be shown as it is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from flowdeck.execution.service import Flowdeck

__all__ = [
    "Client",
    "ClientError",
    "EngineClient",
    "ExecutionRow",
    "ExecutionDetail",
    "InputProblem",
    "LogLine",
    "StepRow",
    "WorkflowFile",
    "WorkflowVersion",
    "silence_console_logging",
]

T = TypeVar("T")
STATUSES = ("pending", "running", "waiting", "success", "failed", "cancelled")


class ClientError(Exception):
    """A failure to show as a notification; `details` may list field problems."""

    def __init__(self, message: str, details: list[InputProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


@dataclass(frozen=True)
class InputProblem:
    field: str
    message: str


@dataclass(frozen=True)
class WorkflowVersion:
    workflow_id: str
    version: int
    status: str  # draft | published | live
    name: str
    description: str | None
    input_schema: dict[str, Any]
    path: str
    has_wait: bool = False  # a Wait step anywhere: the launch form defaults to async


@dataclass(frozen=True)
class WorkflowFile:
    """A definition file, valid or broken, with its problems and source."""

    path: str
    workflow_id: str | None
    version: int | None
    status: str | None
    problems: tuple[str, ...]  # "LINE:COL: severity: message"
    problem_lines: tuple[int, ...]
    has_errors: bool
    source_text: str


@dataclass
class ExecutionRow:
    execution_id: str
    workflow_id: str
    version: str
    mode: str
    status: str
    current_step: str | None
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    resume_at: datetime | None = None


@dataclass
class StepRow:
    key: str
    name: str
    status: str
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    branch: str | None = None  # a condition: the branch it took
    output: Any = None
    has_output: bool = False
    try_number: int = 1  # this step's try: the n-th time its key ran in this execution
    error: str | None = None  # the failure message, when this step failed the execution
    kind: str = ""  # the step's type in the definition (wait, http, condition, ...)


@dataclass
class LogLine:
    timestamp: datetime
    level: str
    message: str


@dataclass
class ExecutionDetail:
    row: ExecutionRow
    body: dict[str, Any]
    steps: list[StepRow] = field(default_factory=list)
    input_data: dict[str, Any] | None = None
    flow_run_id: str = ""
    ui_url: str = ""
    trigger: dict[str, Any] | None = None  # what started it: manual, schedule, api, ...


class Client(Protocol):
    description: str  # the status line: what the dashboard is connected to

    def workflows(self) -> list[WorkflowVersion]: ...
    def files(self) -> list[WorkflowFile]: ...
    def reload(self) -> None: ...
    def check_input(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> list[InputProblem]: ...
    async def executions(self, known_active: list[str], full: bool, limit: int) -> tuple[list[ExecutionRow], bool]: ...
    async def detail(self, execution_id: str) -> ExecutionDetail: ...
    async def logs(self, execution_id: str, after: datetime | None) -> list[LogLine]: ...
    async def run_sync(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]: ...
    async def submit(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]: ...
    async def cancel(self, execution_id: str) -> dict[str, Any]: ...
    def prefect_url(self, execution_id: str) -> str | None: ...
    def backlog(self) -> dict[str, Any]: ...
    def changes(self) -> AsyncIterator[None]: ...
    async def aclose(self) -> None: ...
    def structure(self, workflow_id: str, version: int) -> str: ...


def silence_console_logging() -> None:
    """Prefect's console handlers write to the terminal the dashboard draws on: remove them.
    Runs still ship their logs to the Prefect API (the detail screen streams those)."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            if type(handler).__name__ in ("PrefectConsoleHandler", "StreamHandler", "ConsoleHandler", "RichHandler"):
                logger.removeHandler(handler)
    logging.getLogger("prefect").addHandler(logging.NullHandler())
    logging.getLogger("prefect").propagate = False


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def row_from_body(body: dict[str, Any]) -> ExecutionRow:
    return ExecutionRow(
        execution_id=body["execution_id"],
        workflow_id=body.get("workflow_id") or "?",
        version=str(body.get("workflow_version") or "?"),
        mode=body.get("mode") or "?",
        status=body.get("status") or "?",
        current_step=body.get("current_step"),
        created_at=parse_time(body.get("created_at")),
        started_at=parse_time(body.get("started_at")),
        ended_at=parse_time(body.get("ended_at")),
        resume_at=parse_time(body.get("resume_at")),
    )


class EngineClient:
    """The dashboard's view of a `Flowdeck` engine. Build it with `EngineClient.open()` after
    `flows.prefect_server.configure_environment()` has settled the environment."""

    PAGE = 200  # Prefect's largest page

    def __init__(self, engine: Flowdeck, description: str) -> None:
        self.engine = engine
        self.description = description

    @classmethod
    def open(cls, definitions: str | None = None, description: str | None = None) -> EngineClient:
        from flowdeck.execution.service import Flowdeck

        silence_console_logging()
        engine = Flowdeck.open(definitions)
        return cls(engine, description or f"Prefect {engine.api.api_url}")

    @property
    def api_url(self) -> str:
        return str(self.engine.api.api_url)

    # definitions ---------------------------------------------------------------------
    def reload(self) -> None:
        self.engine.reload(self.engine.catalog.directory or None)

    def workflows(self) -> list[WorkflowVersion]:
        found = []
        for workflow_id, versions in sorted(self.engine.catalog.workflows().items()):
            for definition in versions:
                found.append(
                    WorkflowVersion(
                        workflow_id=workflow_id,
                        version=definition.version,
                        status=definition.status,
                        name=definition.name,
                        description=definition.description,
                        input_schema=dict(definition.input_schema),
                        path=str(definition.path),
                        has_wait=any(step.type == "wait" for step in definition.all_steps()),
                    )
                )
        return found

    def files(self) -> list[WorkflowFile]:
        found = []
        for item in self.engine.catalog.files:
            found.append(
                WorkflowFile(
                    path=str(item.path),
                    workflow_id=item.workflow_id,
                    version=item.version,
                    status=item.status,
                    problems=tuple(f"{p.line}:{p.col}: {p.severity}: {p.message}" for p in item.problems),
                    problem_lines=tuple(p.line for p in item.problems),
                    has_errors=item.has_errors,
                    source_text=item.source_text,
                )
            )
        return sorted(found, key=lambda f: (f.workflow_id or "~", f.version or 0, f.path))

    def check_input(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> list[InputProblem]:
        from flowdeck.errors import FlowdeckError
        from flowdeck.runtime.inputs import input_problems

        try:
            definition = self.engine.resolve(workflow_id, version, allow_draft=True)
        except FlowdeckError as error:
            return [InputProblem("(workflow)", error.message)]
        return [InputProblem(p["field"], p["message"]) for p in input_problems(definition, input_data)]

    # executions ----------------------------------------------------------------------
    async def _call(self, coro: Awaitable[T]) -> T:
        from flowdeck.errors import FlowdeckError

        try:
            return await coro
        except FlowdeckError as error:
            details = error.details if isinstance(error.details, list) else []
            raise ClientError(
                error.message,
                [InputProblem(d.get("field", ""), d.get("message", "")) for d in details if isinstance(d, dict)],
            ) from None
        except OSError as error:
            raise ClientError(f"cannot reach Prefect at {self.api_url}: {error}") from None

    async def executions(
        self, known_active: list[str], full: bool, limit: int = 5000
    ) -> tuple[list[ExecutionRow], bool]:
        """Rows to merge into the table, and whether they are the complete set (rows missing
        from a complete set were deleted).

        Every call: the newest page, every active execution, and the executions that were
        active last time (to see them end). `full`: also page back to `limit` rows.
        """
        return await self._call(self._executions(known_active, full, limit))

    async def _executions(self, known_active: list[str], full: bool, limit: int) -> tuple[list[ExecutionRow], bool]:
        from flowdeck.store import read_model

        self.engine.start_drain()  # the dashboard's process writes the outbox to Prefect too
        bodies = await read_model.dashboard_executions(self.engine.api, known_active, full, limit, self.engine.outbox)
        return [row_from_body(body) for body in bodies], full

    async def detail(self, execution_id: str) -> ExecutionDetail:
        return await self._call(self._detail(execution_id))

    async def _detail(self, execution_id: str) -> ExecutionDetail:
        from flowdeck.store import read_model

        view = await read_model.execution_detail(self.engine.api, execution_id, self.engine.outbox)
        body = view.body
        definition = None
        try:
            definition = self.engine.resolve(body["workflow_id"], body["workflow_version"], allow_draft=True)
        except Exception:  # the definition may be gone or broken now; steps still show
            definition = None
        steps = [
            StepRow(
                key=step.key,
                name=step.name,
                status=step.status,
                attempt=step.attempt,
                started_at=step.started_at,
                ended_at=step.ended_at,
                output=step.output,
                has_output=step.has_output,
            )
            for step in view.steps
        ]
        _mark_branches(steps, definition)
        if definition is not None:
            kinds = {step.id: step.type for step in definition.all_steps()}
            for row in steps:
                row.kind = kinds.get(row.key.rsplit(".", 1)[-1], "")
        settle_steps(steps, body)
        return ExecutionDetail(
            row=row_from_body(body),
            body=body,
            steps=steps,
            input_data=view.input_data,
            flow_run_id=view.flow_run_id,
            ui_url=self.ui_url(view.flow_run_id) if view.flow_run_id else "",
            trigger=view.trigger,
        )

    def ui_url(self, flow_run_id: str) -> str:
        return f"{self.api_url.removesuffix('/api')}/runs/flow-run/{flow_run_id}"

    def prefect_url(self, execution_id: str) -> str | None:
        """The execution's page in the Prefect UI, or None for an id that is not one."""
        from flowdeck.store import read_model

        flow_run_id = read_model.known_flow_run_id(execution_id, self.engine.outbox)
        return None if flow_run_id is None else self.ui_url(str(flow_run_id))

    def backlog(self) -> dict[str, Any]:
        """Executions committed on this machine and not yet in Prefect (for the header): the
        read model's count and oldest age, with the bound and this process's drain errors."""
        from flowdeck.store import read_model

        drain = self.engine.backlog()
        return {
            **read_model.backlog(self.engine.outbox),
            "limit": drain.get("limit"),
            "drain_last_error": drain.get("drain_last_error"),
        }

    async def logs(self, execution_id: str, after: datetime | None) -> list[LogLine]:
        from flowdeck.store import read_model

        views = await self._call(read_model.logs(self.engine.api, execution_id, after, self.engine.outbox))
        return [LogLine(view.timestamp, logging.getLevelName(view.level), view.message) for view in views]

    # actions -------------------------------------------------------------------------
    async def changes(self) -> AsyncIterator[None]:
        """Yields whenever a flowdeck flow run changes state anywhere (Prefect's event
        stream, tens of milliseconds after the change); reconnects on its own."""
        from flowdeck.store import read_model

        async for _ in read_model.execution_changes():
            yield None

    async def run_sync(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            from flowdeck.store.logs import flush_events

            call = await self.engine.run_sync(workflow_id, version, input_data, allow_draft=True)
            try:
                await call.finish()
                await flush_events(timeout=3.0)  # the run's logs and step records, for its detail screen
            except Exception as error:  # the answer stands; Prefect's record may lag
                body = dict(call.body)
                body["record_warning"] = str(error)
                return body
            return call.body

        return await self._call(go())

    async def submit(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.engine.submit(workflow_id, version, input_data, allow_draft=False))

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        return await self._call(self.engine.cancel(execution_id))

    async def aclose(self) -> None:
        try:
            from flowdeck.store.logs import flush_events

            await flush_events(timeout=3.0)
        except Exception:  # leaving: nothing left to tell the user here
            pass
        await self.engine.aclose()

    def structure(self, workflow_id: str, version: int) -> str:
        """The version's steps as a tree (`flowdeck graph`): branches, nested steps, calls, waits."""
        from flowdeck.authoring.graph import render
        from flowdeck.errors import FlowdeckError

        try:
            return render(self.engine.resolve(workflow_id, version, allow_draft=True))
        except FlowdeckError as error:
            return f"cannot show {workflow_id} v{version}: {error.message}"


def settle_steps(steps: list[StepRow], body: dict[str, Any]) -> None:
    """What the task runs alone do not say: each step's try (a key run again after a retry),
    the final output on the last step, the error on the step that failed, a step open while
    the execution waits is waiting, and a step left open by an ended execution ends with it."""
    seen: dict[str, int] = {}
    for step in steps:
        seen[step.key] = seen.get(step.key, 0) + 1
        step.try_number = max(seen[step.key], step.attempt)
    status = body.get("status")
    if status == "success" and steps and "output" in body and not steps[-1].has_output:
        steps[-1].output, steps[-1].has_output = body["output"], True
    error = body.get("error") or {}
    if status == "failed" and error.get("step_name"):
        failing = [s for s in steps if s.name == error["step_name"] or s.key == error["step_name"]]
        if failing:
            failing[-1].error = str(error.get("message"))
            failing[-1].status = "failed"
    ended_at = parse_time(body.get("ended_at"))
    for step in steps:
        if step.status in ("running", "pending", "waiting"):
            if status == "waiting":
                step.status = "waiting"
            elif status in ("success", "failed", "cancelled"):
                step.status = "cancelled" if status == "cancelled" else status
                step.ended_at = step.ended_at or ended_at
        # a step's record may be closed after the execution ended (a cancelled wait): never longer
        if ended_at is not None and step.ended_at is not None and step.ended_at > ended_at:
            step.ended_at = ended_at


def _mark_branches(steps: list[StepRow], definition: Any) -> None:
    """Which branch each condition took: its journaled output, else the branch whose steps ran."""
    if definition is None:
        return
    from flowdeck.definition.model import ConditionStep

    owner: dict[str, tuple[str, str]] = {}
    conditions: dict[str, Any] = {}
    for step in definition.all_steps():
        if isinstance(step, ConditionStep):
            conditions[step.id] = step
            for branch in step.branches:
                for inner in branch.steps:
                    owner[inner.id] = (step.id, branch.name)
            for inner in step.default:
                owner[inner.id] = (step.id, "default")
    ran = {s.key.rsplit(".", 1)[-1] for s in steps}
    for row in steps:
        condition_id = row.key.rsplit(".", 1)[-1]
        if condition_id not in conditions:
            continue
        if row.has_output:
            row.branch = row.output if row.output else "default"
            continue
        taken = {owner[k][1] for k in ran if k in owner and owner[k][0] == condition_id}
        if taken:
            row.branch = sorted(taken)[0]
        elif row.status == "success":
            # no step of any branch ran: the branch taken has no steps; name it when only one is empty
            condition = conditions[condition_id]
            empty = [b.name for b in condition.branches if not b.steps] + ([] if condition.default else ["default"])
            row.branch = empty[0] if len(empty) == 1 else "(an empty branch)"
