"""Executions as users see them: the status body, read from the Prefect flow run.

Prefect is the only store: the status of an execution is its flow run's state, its
workflow and mode are the run's tags, its output or error is the result record of the
final state, its current step is the latest task run. Any process that can reach the
Prefect API (and its result storage) answers the same.

    Prefect state                       flowdeck status
    Scheduled / Late / Pending          pending
    Scheduled named "Waiting"           waiting   (resume_at = scheduled time)
    Scheduled named "AwaitingRetry"     pending   (resume_at = retry time)
    Scheduled named "HandedOff"         running   (a sync call's limit passed; async continues)
    Paused / Suspended                  waiting
    Running / Cancelling                running
    Completed                           success
    Failed / Crashed / TimedOut         failed
    Cancelled                           cancelled
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect.client.schemas.objects import FlowRun, StateType

from flowdeck.store import recording
from flowdeck.errors import UnknownExecution
from flowdeck.store.prefect_api import PrefectAPI

TERMINAL = {"success", "failed", "cancelled"}


def status_of(flow_run: FlowRun) -> str:
    state = flow_run.state
    if state is None:
        return "pending"
    kind = state.type
    if kind == StateType.SCHEDULED:
        if state.name == "HandedOff":  # a sync call reached its limit; a worker continues
            return "running"
        return "waiting" if state.name == "Waiting" else "pending"
    if kind == StateType.PENDING:
        return "pending"
    if kind == StateType.PAUSED:
        return "waiting"
    if kind in (StateType.RUNNING, StateType.CANCELLING):
        return "running"
    if kind == StateType.COMPLETED:
        return "success"
    if kind == StateType.CANCELLED:
        return "cancelled"
    return "failed"


def tag_value(flow_run: FlowRun, prefix: str) -> str | None:
    for tag in flow_run.tags:
        if tag.startswith(prefix + ":"):
            return tag[len(prefix) + 1 :]
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def read_flow_run(api: PrefectAPI, execution_id: str) -> FlowRun:
    flow_run_id = recording.flow_run_id_for(execution_id)
    flow_run = await api.read_flow_run(flow_run_id) if flow_run_id else None
    if flow_run is None or recording.FLOWDECK_TAG not in flow_run.tags:
        raise UnknownExecution(
            f"no execution '{execution_id}'; execution ids look like exec_<32 hex> "
            "(see `flowdeck executions`)"
        )
    return flow_run


async def get_status(api: PrefectAPI, execution_id: str) -> dict[str, Any]:
    """The body of `flowdeck status` and `GET /workflow/workflow-executions/{id}`."""
    flow_run = await read_flow_run(api, execution_id)
    return await status_body(api, flow_run)


async def status_body(
    api: PrefectAPI, flow_run: FlowRun, *, with_steps: bool = True, with_result: bool = True
) -> dict[str, Any]:
    status = status_of(flow_run)
    version = tag_value(flow_run, "version")
    body: dict[str, Any] = {
        "status": status,
        "execution_id": recording.execution_id_for(flow_run.id),
        "workflow_id": tag_value(flow_run, "workflow"),
        "workflow_version": int(version) if version and version.isdigit() else version,
        "mode": tag_value(flow_run, "mode"),
        "created_at": _iso(flow_run.created),
        "started_at": _iso(flow_run.start_time),
        "ended_at": _iso(flow_run.end_time) if status in TERMINAL else None,
        "current_step": None,
        "resume_at": None,
        "attempt": int((flow_run.labels or {}).get("flowdeck.attempt", 1) or 1),
    }
    state = flow_run.state
    if state is not None and state.type == StateType.SCHEDULED and state.name in ("Waiting", "AwaitingRetry"):
        body["resume_at"] = _iso(state.state_details.scheduled_time)
    if with_steps and (status != "pending" or body["attempt"] > 1):
        body["current_step"] = await current_step(api, flow_run)
        if status == "waiting" and state is not None:
            # task runs arrive through events and may lag the state by a few ms; the
            # Waiting state names its step (flows.durable.waiting_message)
            body["current_step"] = _waiting_step(state.message) or body["current_step"]
    if with_result and status in ("success", "failed"):
        # a status read answers at once (503) rather than wait for a result storage that is down
        outcome = await recording.read_record(recording.outcome_key(flow_run.id), patience=0)
        if status == "success":
            body["output"] = (outcome or {}).get("output") if outcome else {}
        else:
            body["error"] = (outcome or {}).get("error") if outcome else None
            if not body["error"]:
                body["error"] = {"step_name": None, "message": (state.message if state else None) or "failed"}
    return body


def waiting_message(step_name: str, resume_at: datetime) -> str:
    """The message of a Waiting state; `_waiting_step` reads the step name back from it."""
    return f"waiting at step '{step_name}' until {resume_at.isoformat()}"


def _waiting_step(message: str | None) -> str | None:
    prefix = "waiting at step '"
    if message and message.startswith(prefix) and "' until " in message:
        return message[len(prefix) : message.index("' until ")]
    return None


async def current_step(api: PrefectAPI, flow_run: FlowRun) -> str | None:
    """The step running or waiting now, else the last one that ran."""
    task_runs = await api.read_task_runs(flow_run.id)
    if not task_runs:
        return None
    open_runs = [t for t in task_runs if t.state_type in (StateType.RUNNING, StateType.PENDING)]
    chosen = (open_runs or task_runs)[-1]
    return chosen.name


_STATE_TYPES = {
    "pending": ["SCHEDULED", "PENDING"],
    "waiting": ["SCHEDULED", "PAUSED"],
    "running": ["RUNNING", "CANCELLING"],
    "success": ["COMPLETED"],
    "failed": ["FAILED", "CRASHED"],
    "cancelled": ["CANCELLED"],
}


async def recent(
    api: PrefectAPI,
    *,
    limit: int = 200,
    workflow_id: str | None = None,
    statuses: list[str] | None = None,
    include_future: bool = False,
) -> list[dict[str, Any]]:
    """Recent executions, newest first, as status bodies without the per-run lookups
    (current_step, output) that a list does not need."""
    tags = [recording.FLOWDECK_TAG] + ([f"workflow:{workflow_id}"] if workflow_id else [])
    flow_runs_filter: dict[str, Any] = {"tags": {"all_": tags}}
    if statuses:
        types = sorted({t for s in statuses for t in _STATE_TYPES.get(s, [])})
        flow_runs_filter["state"] = {"type": {"any_": types}}
    if not include_future:
        # schedule triggers create runs days ahead; they are not executions yet
        from datetime import timedelta, timezone

        horizon = datetime.now(timezone.utc) + timedelta(minutes=1)
        flow_runs_filter["expected_start_time"] = {"before_": horizon.isoformat()}
    runs = await api.read_flow_runs(
        {"flow_runs": flow_runs_filter, "sort": "EXPECTED_START_TIME_DESC", "limit": limit}
    )
    bodies = [await status_body(api, run, with_steps=False, with_result=False) for run in runs]
    if statuses:
        bodies = [b for b in bodies if b["status"] in statuses]
    return bodies
