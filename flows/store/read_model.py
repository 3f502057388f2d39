"""The read model of executions, steps and logs: what the CLI, the API and the dashboard show.

An execution committed to this machine's outbox and not yet (fully) drained is answered
from the outbox (`outbox_body`), so a read right after an answer sees it at once; every
other read is Prefect's: the status of an execution is its flow run's state, its
workflow and mode are the run's tags, its output or error is the result record of the
final state, its current step is the latest task run (the encoding is
`flowdeck.store.encoding`). Any process that can reach the Prefect API (and its result
storage) answers the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import FlowRun, StateType, TaskRun

from flowdeck.errors import UnknownExecution
from flowdeck.store import encoding, journal
from flowdeck.store.events import step_key_of
from flowdeck.store.outbox import ExecutionRow, Outbox
from flowdeck.store.prefect_api import PrefectAPI

TERMINAL = encoding.TERMINAL
PAGE = 200  # Prefect's largest page
OUTBOX_DETAIL_ENTRIES = 5000  # entries of one execution read for its detail or logs (a bound)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


_flow_run_ids: dict[str, UUID] = {}  # execution id -> flow run id (never changes once made)


def _unknown(execution_id: str) -> UnknownExecution:
    return UnknownExecution(
        f"no execution '{execution_id}'; execution ids look like exec_<32 hex> (see `flowdeck executions`)"
    )


async def read_flow_run(api: PrefectAPI, execution_id: str, outbox: Outbox | None = None) -> FlowRun:
    """The flow run of an execution: found by its idempotency key (the execution id), or
    by id for executions made before the outbox."""
    known = _flow_run_ids.get(execution_id)
    if known is None and outbox is not None:
        row = outbox.execution(execution_id)
        known = UUID(row.flow_run_id) if row and row.flow_run_id else None
    flow_run: FlowRun | None = None
    if known is not None:
        flow_run = await api.read_flow_run(known)
    elif encoding.is_execution_id(execution_id):
        found = await api.read_flow_runs({"flow_runs": encoding.execution_filter([execution_id]), "limit": 1})
        flow_run = found[0] if found else None
    if flow_run is None or not encoding.is_flowdeck_run(flow_run):
        raise _unknown(execution_id)
    _flow_run_ids[execution_id] = flow_run.id
    return flow_run


async def get_status(api: PrefectAPI, execution_id: str, outbox: Outbox | None = None) -> dict[str, Any]:
    """The body of `flowdeck status` and `GET /workflow/workflow-executions/{id}`."""
    row = _undrained(outbox, execution_id)
    if outbox is not None and row is not None:
        return outbox_body(outbox, row)
    flow_run = await read_flow_run(api, execution_id, outbox)
    return await status_body(api, flow_run)


def outbox_body(outbox: Outbox, row: ExecutionRow) -> dict[str, Any]:
    """The status body of an execution Prefect does not fully hold yet, from the outbox."""
    entries = outbox.entries(row.execution_id, 0, 2000)
    created = entries[0].payload if entries and entries[0].kind == "created" else {}
    body: dict[str, Any] = {
        "status": row.status,
        "execution_id": row.execution_id,
        "workflow_id": row.workflow_id,
        "workflow_version": row.version,
        "mode": row.mode,
        "created_at": datetime.fromtimestamp(row.created, UTC).isoformat(),
        "started_at": created.get("started_at") if row.mode == "sync" else None,
        "ended_at": None,
        "current_step": None,
        "resume_at": None,
        "attempt": 1,
    }
    for entry in entries:
        if entry.kind == "event":
            body["current_step"] = entry.payload.get("resource", {}).get("prefect.resource.name")
        elif entry.kind == "final":
            body["ended_at"] = datetime.fromtimestamp(entry.at, UTC).isoformat()
            record = entry.payload.get("record") or {}
            if row.status == "success":
                body["output"] = record.get("output", {})
            else:
                body["error"] = record.get("error") or entry.payload.get("error")
        elif entry.kind == "handoff":
            body["resume_at"] = entry.payload.get("resume_at")
            body["current_step"] = entry.payload.get("step_name") or body["current_step"]
    return body


async def status_body(
    api: PrefectAPI, flow_run: FlowRun, *, with_steps: bool = True, with_result: bool = True
) -> dict[str, Any]:
    status = encoding.status_of(flow_run)
    version = encoding.version_text_of(flow_run)
    body: dict[str, Any] = {
        "status": status,
        "execution_id": encoding.execution_id_of(flow_run),
        "workflow_id": encoding.workflow_of(flow_run),
        "workflow_version": int(version) if version and version.isdigit() else version,
        "mode": encoding.mode_of(flow_run),
        "created_at": _iso(flow_run.created),
        "started_at": _iso(flow_run.start_time),
        "ended_at": _iso(flow_run.end_time) if status in TERMINAL else None,
        "current_step": None,
        "resume_at": _iso(encoding.resume_at_of(flow_run)),
        "attempt": encoding.attempt_of(flow_run),
    }
    state = flow_run.state
    if with_steps and (status != "pending" or body["attempt"] > 1):
        body["current_step"] = await current_step(api, flow_run)
        if state is not None and state.name in (encoding.WAITING, encoding.HANDED_OFF):
            # task runs arrive through events and lag the state (the server's task-run
            # recorder writes them in batches); Waiting and HandedOff states name their step
            named = encoding.waiting_step(state.message) or encoding.handed_off_step(state.message)
            body["current_step"] = named or body["current_step"]
    if with_result and status in ("success", "failed"):
        # a status read answers at once (503) rather than wait for a result storage that is down
        outcome = await journal.read_outcome(encoding.execution_id_of(flow_run), patience=0)
        if status == "success":
            body["output"] = (outcome or {}).get("output") if outcome else {}
        else:
            body["error"] = (outcome or {}).get("error") if outcome else None
            if not body["error"]:
                body["error"] = {"step_name": None, "message": (state.message if state else None) or "failed"}
    return body


def _chosen_step(task_runs: list[TaskRun]) -> TaskRun:
    """The step running or waiting now, else the last one that ran (task runs oldest first)."""
    open_runs = [t for t in task_runs if t.state_type in (StateType.RUNNING, StateType.PENDING)]
    return (open_runs or task_runs)[-1]


async def current_step(api: PrefectAPI, flow_run: FlowRun) -> str | None:
    """The step running or waiting now, else the last one that ran."""
    task_runs = await api.read_task_runs(flow_run.id)
    if not task_runs:
        return None
    return _chosen_step(task_runs).name


def _flow_runs_query(flow_runs_filter: dict[str, Any], limit: int, offset: int | None = None) -> dict[str, Any]:
    query = {"flow_runs": flow_runs_filter, "sort": "EXPECTED_START_TIME_DESC", "limit": limit}
    if offset is not None:
        query["offset"] = offset
    return query


def _before_horizon() -> dict[str, Any]:
    # schedule triggers create runs days ahead; they are not executions yet
    horizon = datetime.now(UTC) + timedelta(minutes=1)
    return {"expected_start_time": {"before_": horizon.isoformat()}}


async def recent(
    api: PrefectAPI,
    *,
    limit: int = 200,
    workflow_id: str | None = None,
    statuses: list[str] | None = None,
    include_future: bool = False,
    outbox: Outbox | None = None,
) -> list[dict[str, Any]]:
    """Recent executions, newest first, as status bodies without the per-run lookups
    (current_step, output) that a list does not need; those committed here and not yet in
    Prefect come from the outbox."""
    flow_runs_filter = encoding.flowdeck_runs_filter(workflow_id)
    if statuses:
        types = sorted({t for s in statuses for t in encoding.STATE_TYPES_OF_STATUS.get(s, [])})
        flow_runs_filter["state"] = {"type": {"any_": types}}
    if not include_future:
        flow_runs_filter.update(_before_horizon())
    runs = await api.read_flow_runs(_flow_runs_query(flow_runs_filter, limit))
    bodies = [await status_body(api, run, with_steps=False, with_result=False) for run in runs]
    if outbox is not None:
        seen = {b["execution_id"] for b in bodies}
        local = [
            outbox_body(outbox, row)
            for row in outbox.undrained(limit)
            if row.execution_id not in seen and (workflow_id is None or row.workflow_id == workflow_id)
        ]
        bodies = sorted(local + bodies, key=lambda b: b["created_at"] or "", reverse=True)[:limit]
    if statuses:
        bodies = [b for b in bodies if b["status"] in statuses]
    return bodies


# the dashboard ---------------------------------------------------------------------------
async def _bodies(api: PrefectAPI, flow_runs_filter: dict[str, Any], offset: int = 0) -> list[dict[str, Any]]:
    runs = await api.read_flow_runs(_flow_runs_query(flow_runs_filter, PAGE, offset))
    for run in runs:
        _flow_run_ids[encoding.execution_id_of(run)] = run.id
    return [await status_body(api, run, with_steps=False, with_result=False) for run in runs]


async def dashboard_executions(
    api: PrefectAPI, known_active: list[str], full: bool, limit: int, outbox: Outbox | None = None
) -> list[dict[str, Any]]:
    """Status bodies for the dashboard's table: the newest page (`full`: pages back to
    `limit` rows), every active execution, and the executions in `known_active` (to see
    them end); running and waiting ones with their current step."""
    base = {**encoding.flowdeck_runs_filter(), **_before_horizon()}
    bodies: dict[str, dict[str, Any]] = {}
    pages = max(1, -(-limit // PAGE)) if full else 1
    for page in range(pages):
        got = await _bodies(api, base, page * PAGE)
        bodies.update((b["execution_id"], b) for b in got)
        if len(got) < PAGE:
            break
    active = await _bodies(api, {**base, "state": {"type": {"any_": encoding.ACTIVE_STATE_TYPES}}})
    bodies.update((b["execution_id"], b) for b in active)
    if outbox is not None:
        for row in outbox.undrained(PAGE):
            bodies.setdefault(row.execution_id, outbox_body(outbox, row))
    ended = [i for i in known_active if i not in bodies and encoding.is_execution_id(i)]
    for start in range(0, len(ended), PAGE):
        got = await _bodies(api, encoding.execution_filter(ended[start : start + PAGE]))
        bodies.update((b["execution_id"], b) for b in got)
    await _fill_current_steps(api, [b for b in bodies.values() if b["status"] in ("running", "waiting")])
    return list(bodies.values())


async def _fill_current_steps(api: PrefectAPI, bodies: list[dict[str, Any]]) -> None:
    """One task-run query for all running executions: the open (else latest) step."""
    if not bodies:
        return
    by_run: dict[UUID, dict[str, Any]] = {}
    for body in bodies[:PAGE]:
        flow_run_id = _flow_run_ids.get(body["execution_id"])
        if flow_run_id is not None:
            by_run[flow_run_id] = body
    task_runs = await api.read_task_runs_of(list(by_run), PAGE, strict=False)
    chosen: dict[UUID | None, tuple[bool, str]] = {}
    for task_run in task_runs:
        is_open = task_run.state_type is not None and task_run.state_type.value in encoding.OPEN_STEP_STATE_TYPES
        previous = chosen.get(task_run.flow_run_id)
        if previous is None or is_open or not previous[0]:
            chosen[task_run.flow_run_id] = (is_open, task_run.name or "")
    for run_id, (_, name) in chosen.items():
        if run_id in by_run:
            by_run[run_id]["current_step"] = name


@dataclass
class StepView:
    """One executed step (a task run), with its journaled output when it finished."""

    key: str  # the step's key in the run (`parent.step` inside a loop or a branch)
    name: str
    status: str  # a flowdeck status (encoding.step_status)
    attempt: int  # the task run's run count
    started_at: datetime | None
    ended_at: datetime | None
    output: Any = None  # the journaled output, when it finished
    has_output: bool = False


@dataclass
class ExecutionView:
    body: dict[str, Any]
    steps: list[StepView]
    input_data: dict[str, Any]
    flow_run_id: str  # "" while only the outbox holds the execution
    trigger: dict[str, Any] = field(default_factory=dict)  # what started it: manual, schedule, api, ...


def trigger_of(flow_run: FlowRun) -> dict[str, Any]:
    """What started a run: the trigger flowdeck stored in its context, else a schedule's or a manual run."""
    context = (flow_run.context or {}).get("flowdeck") or {}
    if context.get("trigger"):
        trigger: dict[str, Any] = context["trigger"]
        return trigger
    if flow_run.auto_scheduled:
        moment = flow_run.expected_start_time
        return {"type": "schedule", "scheduled_at": moment.isoformat() if moment else None}
    return {"type": "manual"}


def _undrained(outbox: Outbox | None, execution_id: str) -> ExecutionRow | None:
    """The outbox row of an execution Prefect does not fully hold yet (None: read Prefect)."""
    row = outbox.execution(execution_id) if outbox is not None else None
    return row if row is not None and (not row.drained or row.flow_run_id is None) else None


def outbox_detail(outbox: Outbox, row: ExecutionRow) -> ExecutionView:
    """An execution's detail from the outbox alone: its steps from the task-run events it
    committed (the last state of each task run), their outputs from its step entries."""
    entries = outbox.entries(row.execution_id, 0, OUTBOX_DETAIL_ENTRIES)
    created = entries[0].payload if entries and entries[0].kind == "created" else {}
    steps: dict[str, StepView] = {}
    outputs: dict[str, Any] = {}
    for entry in entries:
        if entry.kind == "step":
            outputs[entry.payload["key"]] = (entry.payload.get("entry") or {}).get("output")
        elif entry.kind == "event":
            run_id = str(entry.payload.get("resource", {}).get("prefect.resource.id", ""))
            task_run = (entry.payload.get("payload") or {}).get("task_run") or {}
            state = ((entry.payload.get("payload") or {}).get("validated_state") or {}).get("type") or "PENDING"
            key = step_key_of(task_run.get("dynamic_key") or task_run.get("name") or "?")
            steps[run_id] = StepView(
                key=key,
                name=task_run.get("name") or key,
                status=encoding.step_status(state),
                attempt=max(1, int(task_run.get("run_count") or 1)),
                started_at=_time(task_run.get("start_time")),
                ended_at=_time(task_run.get("end_time")),
            )
    for step in steps.values():
        if step.status == "success" and step.key in outputs:
            step.output, step.has_output = outputs[step.key], True
    context = (created.get("context") or {}).get("flowdeck") or {}
    return ExecutionView(
        body=outbox_body(outbox, row),
        steps=sorted(steps.values(), key=lambda s: s.started_at or datetime.max.replace(tzinfo=UTC)),
        input_data=dict(created.get("parameters") or {}),
        flow_run_id=row.flow_run_id or "",
        trigger=context.get("trigger") or {"type": "manual"},
    )


async def execution_detail(api: PrefectAPI, execution_id: str, outbox: Outbox | None = None) -> ExecutionView:
    """The status body, the steps (with outputs), the input and the trigger of one execution:
    from the outbox until Prefect holds all of it, from Prefect (and result storage) after."""
    row = _undrained(outbox, execution_id)
    if outbox is not None and row is not None:
        return outbox_detail(outbox, row)
    flow_run = await read_flow_run(api, execution_id, outbox)
    body = await status_body(api, flow_run)
    steps = []
    for task_run in await api.read_task_runs(flow_run.id):
        state = task_run.state_type.value if task_run.state_type else "PENDING"
        key = step_key_of(task_run.dynamic_key or task_run.name)
        step = StepView(
            key=key,
            name=task_run.name,
            status=encoding.step_status(state),
            attempt=max(1, task_run.run_count or 1),
            started_at=task_run.start_time,
            ended_at=task_run.end_time,
        )
        if state == "COMPLETED":
            try:
                entry = await journal.read_step(execution_id, key, patience=0)
            except Exception:  # unreadable storage: the step shows without output
                entry = None
            if isinstance(entry, dict) and "output" in entry:
                step.output, step.has_output = entry["output"], True
        steps.append(step)
    return ExecutionView(
        body=body,
        steps=steps,
        input_data=dict(flow_run.parameters or {}),
        flow_run_id=str(flow_run.id),
        trigger=trigger_of(flow_run),
    )


@dataclass
class LogView:
    timestamp: datetime
    level: int
    message: str


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value is not None else None
    except ValueError:
        return None


def known_flow_run_id(execution_id: str, outbox: Outbox | None = None) -> UUID | None:
    """The flow run of an execution as far as is known without a request (reads and the
    outbox's drain fill it; ids made before the outbox are their flow run's)."""
    known = _flow_run_ids.get(execution_id)
    if known is None and outbox is not None:
        row = outbox.execution(execution_id)
        known = UUID(row.flow_run_id) if row and row.flow_run_id else None
    return known or encoding.flow_run_id_for(execution_id)


def backlog(outbox: Outbox) -> dict[str, Any]:
    """What the dashboard header shows: executions committed here, not yet in Prefect."""
    return outbox.backlog()


async def flow_run_id_of(api: PrefectAPI, execution_id: str, outbox: Outbox | None = None) -> UUID | None:
    """The flow run of an execution (None while only the outbox has it, or for no execution)."""
    try:
        return _flow_run_ids.get(execution_id) or (await read_flow_run(api, execution_id, outbox)).id
    except UnknownExecution:
        return None


def _outbox_logs(outbox: Outbox, execution_id: str, after: datetime | None) -> list[LogView]:
    lines = []
    for entry in outbox.entries(execution_id, 0, OUTBOX_DETAIL_ENTRIES):
        moment = _time(entry.payload.get("timestamp")) if entry.kind == "log" else None
        if moment is not None and (after is None or moment > after):
            lines.append(LogView(moment, entry.payload.get("level", 20), entry.payload.get("message", "")))
    return lines


async def logs(
    api: PrefectAPI, execution_id: str, after: datetime | None, outbox: Outbox | None = None
) -> list[LogView]:
    """An execution's log lines after `after`, oldest first (a page): from the outbox until
    Prefect holds them all, from Prefect after."""
    if outbox is not None and _undrained(outbox, execution_id) is not None:
        return _outbox_logs(outbox, execution_id, after)
    flow_run_id = await flow_run_id_of(api, execution_id, outbox)
    if flow_run_id is None:
        return []
    logs_filter: dict[str, Any] = {"flow_run_id": {"any_": [str(flow_run_id)]}}
    if after is not None:
        logs_filter["timestamp"] = {"after_": after.isoformat()}
    lines = []
    for item in await api.read_logs(logs_filter):
        moment = _time(item.get("timestamp"))
        if moment is None or (after is not None and moment <= after):
            continue
        lines.append(LogView(moment, item.get("level", 20), item.get("message", "")))
    return lines


async def execution_changes() -> AsyncIterator[None]:
    """Yields whenever a flowdeck flow run changes state anywhere (Prefect's event stream,
    tens of milliseconds after the change); reconnects on its own."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    event_filter = EventFilter(event=EventNameFilter(prefix=["prefect.flow-run."]))
    while True:
        try:
            async with get_events_subscriber(filter=event_filter, reconnection_attempts=1000) as events:
                async for event in events:
                    if encoding.is_flowdeck_event(event):
                        yield None
        except asyncio.CancelledError:
            raise
        except Exception:  # the periodic refresh covers while the stream is down
            await asyncio.sleep(2.0)
