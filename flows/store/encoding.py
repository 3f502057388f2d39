"""How an execution is encoded in Prefect: the one module that knows the spelling.

An execution is a Prefect flow run:

- its id is the flow run id (`exec_<32 hex>` is the UUID's hex);
- its workflow, version and mode are the run's tags (`flowdeck`, `workflow:<id>`,
  `version:<n>`, `mode:<sync|async>`); its attempt is the `flowdeck.attempt` label;
- its status is the run's state (the table below); timers are `Scheduled` states with a
  name (`Waiting`, `AwaitingRetry`, `HandedOff`); the worker that owns a claimed or running
  run is written into the state message (`claimed by <name>`, `worker <name>`), and a
  Waiting state's message names its step;
- its output or error is the result record under `outcome_key`, each finished step's
  journal entry the record under `journal_key`.

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

Everything here is pure (no I/O): building and parsing these values.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.states import Cancelled, Cancelling, Completed, Failed, Running, Scheduled

from flowdeck.definition.model import WorkflowDefinition

# ids -----------------------------------------------------------------------------------
EXECUTION_ID_PREFIX = "exec_"


EXECUTION_LABEL = "flowdeck.execution"


def execution_id_for(flow_run_id: UUID) -> str:
    """The id of an execution made before the outbox (its flow run id; see `execution_id_of`)."""
    return f"{EXECUTION_ID_PREFIX}{flow_run_id.hex}"


def mint_execution_id() -> str:
    """A new execution id, made here before Prefect knows the run (Prefect cannot take a
    chosen flow-run id): a version-7 UUID (time-ordered, random below the millisecond)."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | (secrets.randbits(80))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return f"{EXECUTION_ID_PREFIX}{UUID(int=value).hex}"


def keyed_execution_id(workflow_id: str, idempotency_key: str) -> str:
    """The execution id of a keyed submission: the same key (per workflow) gives the same
    id in every process on every machine, and Prefect's idempotency key dedupes it."""
    digest = bytearray(hashlib.blake2b(f"{workflow_id}\0{idempotency_key}".encode(), digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x70
    digest[8] = (digest[8] & 0x3F) | 0x80
    return f"{EXECUTION_ID_PREFIX}{UUID(bytes=bytes(digest)).hex}"


def is_execution_id(text: str) -> bool:
    if not text.startswith(EXECUTION_ID_PREFIX):
        return False
    try:
        UUID(hex=text[len(EXECUTION_ID_PREFIX) :])
    except ValueError:
        return False
    return len(text) == len(EXECUTION_ID_PREFIX) + 32


def flow_run_id_for(execution_id: str) -> UUID | None:
    """The flow run id an execution id would be if it was made before the outbox (or by
    Prefect, for a schedule run), None when it is no execution id. Ids flowdeck mints are
    not flow run ids: `execution_filter` finds both kinds in one query."""
    if not is_execution_id(execution_id):
        return None
    return UUID(hex=execution_id[len(EXECUTION_ID_PREFIX) :])


def execution_id_of(flow_run: FlowRun) -> str:
    """The execution a flow run records: its execution label, else (older runs) its id."""
    label = (flow_run.labels or {}).get(EXECUTION_LABEL)
    return str(label) if label else execution_id_for(flow_run.id)


def execution_filter(execution_ids: list[str]) -> dict[str, Any]:
    """The flow-run filter of these executions: a flow run flowdeck made has the execution
    id as its idempotency key (indexed by Prefect); a run made before the outbox, or by
    Prefect's scheduler, has it as its id. (Its operator is `or_`: do not add criteria.)"""
    valid = [e for e in execution_ids if is_execution_id(e)]
    return {
        "operator": "or_",
        "idempotency_key": {"any_": valid},
        "id": {"any_": [str(flow_run_id_for(e)) for e in valid]},
    }


def record_key_of(execution_id: str) -> str:
    """The hex that names an execution's result records (its journal and outcome)."""
    return execution_id[len(EXECUTION_ID_PREFIX) :]


def flow_run_name(definition: WorkflowDefinition) -> str:
    return f"{definition.id} v{definition.version}"


# tags ----------------------------------------------------------------------------------
FLOWDECK_TAG = "flowdeck"
_WORKFLOW, _VERSION, _MODE = "workflow", "version", "mode"  # tag kinds: `<kind>:<value>`


def _tag(kind: str, value: object) -> str:
    return f"{kind}:{value}"


def workflow_tag(workflow_id: str) -> str:
    return _tag(_WORKFLOW, workflow_id)


def run_tags(definition: WorkflowDefinition, mode: str) -> list[str]:
    return [
        FLOWDECK_TAG,
        workflow_tag(definition.id),
        _tag(_VERSION, definition.version),
        _tag(_MODE, mode),
    ]


def step_tag(step_type: str) -> str:
    return _tag("step", step_type)


def workflow_tags(workflow_ids: Iterable[str]) -> list[str]:
    """The tags of these workflows (for an `any_` filter); never empty, so that a filter
    built from no workflow matches nothing rather than everything."""
    return sorted({workflow_tag(i) for i in workflow_ids}) or [workflow_tag("")]


def tag_value(tags: Iterable[str], kind: str) -> str | None:
    prefix = kind + ":"
    for tag in tags:
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return None


def workflow_of(flow_run: FlowRun) -> str | None:
    return tag_value(flow_run.tags, _WORKFLOW)


def version_text_of(flow_run: FlowRun) -> str | None:
    return tag_value(flow_run.tags, _VERSION)


def version_of_tags(tags: Iterable[str]) -> int | None:
    """The version tag as a number (None when there is none)."""
    value = tag_value(tags, _VERSION)
    return int(value) if value is not None else None


def names_one_execution(flow_run: FlowRun) -> bool:
    """Exactly one workflow tag and one version tag (a run with two reads as either)."""
    kinds = [tag.split(":", 1)[0] for tag in flow_run.tags]
    return kinds.count(_WORKFLOW) == 1 and kinds.count(_VERSION) == 1


def mode_of(flow_run: FlowRun, default: str | None = None) -> str | None:
    return tag_value(flow_run.tags, _MODE) or default


def has_workflow_tag(tags: Iterable[str]) -> bool:
    return tag_value(tags, _WORKFLOW) is not None


def is_flowdeck_run(flow_run: FlowRun) -> bool:
    return FLOWDECK_TAG in flow_run.tags


def flowdeck_runs_filter(workflow_id: str | None = None) -> dict[str, Any]:
    """The flow-run filter of flowdeck's runs (of one workflow)."""
    tags = [FLOWDECK_TAG] + ([workflow_tag(workflow_id)] if workflow_id else [])
    return {"tags": {"all_": tags}}


# events --------------------------------------------------------------------------------
def _tag_resource(tag: str) -> str:
    return f"prefect.tag.{tag}"


def event_tags(event: Any) -> set[str]:
    """The tag resources related to a Prefect event."""
    return {related.id for related in event.related if related.role == "tag"}


def is_flowdeck_event(event: Any) -> bool:
    return any(related.id == _tag_resource(FLOWDECK_TAG) for related in event.related)


def event_is_for(event: Any, workflow_ids: Iterable[str]) -> bool:
    """A flowdeck flow-run event of one of these workflows."""
    tags = event_tags(event)
    if _tag_resource(FLOWDECK_TAG) not in tags:
        return False
    return any(_tag_resource(tag) in tags for tag in workflow_tags(workflow_ids))


def event_flow_run_id(event: Any) -> UUID:
    return UUID(event.resource.id.rsplit(".", 1)[-1])


def tag_resources(tags: Iterable[str]) -> list[dict[str, str]]:
    """`related` entries of an event for these tags."""
    return [{"prefect.resource.id": _tag_resource(tag), "prefect.resource.role": "tag"} for tag in sorted(tags)]


# labels --------------------------------------------------------------------------------
ATTEMPT_LABEL = "flowdeck.attempt"
STATUS_LABEL = "flowdeck.status"
# flowdeck created the run: an HMAC over what it was created with (flowdeck.execution.pinning)
PIN_LABEL = "flowdeck.pin"


TAKEOVERS_LABEL = "flowdeck.takeovers"


def first_attempt_labels(execution_id: str | None = None) -> dict[str, Any]:
    labels: dict[str, Any] = {ATTEMPT_LABEL: 1}
    if execution_id:
        labels[EXECUTION_LABEL] = execution_id
    return labels


def takeovers_of(flow_run: FlowRun) -> int:
    """How many times the run was taken over from an executor that died."""
    return int((flow_run.labels or {}).get(TAKEOVERS_LABEL, 0) or 0)


def attempt_labels(attempt: int) -> dict[str, Any]:
    return {ATTEMPT_LABEL: attempt}


def attempt_of(flow_run: FlowRun) -> int:
    """The attempt a run is on (1 for the first)."""
    return int((flow_run.labels or {}).get(ATTEMPT_LABEL, 1) or 1)


def deployment_labels(definition: WorkflowDefinition) -> dict[str, Any]:
    return {STATUS_LABEL: definition.status}


# states --------------------------------------------------------------------------------
WAITING = "Waiting"
AWAITING_RETRY = "AwaitingRetry"
HANDED_OFF = "HandedOff"
_WAITING_PREFIX = "waiting at step '"
_WAITING_UNTIL = "' until "


def waiting_message(step_name: str, resume_at: datetime) -> str:
    """The message of a Waiting state; `waiting_step` reads the step name back from it."""
    return f"{_WAITING_PREFIX}{step_name}{_WAITING_UNTIL}{resume_at.isoformat()}"


def waiting_step(message: str | None) -> str | None:
    if message and message.startswith(_WAITING_PREFIX) and _WAITING_UNTIL in message:
        return message[len(_WAITING_PREFIX) : message.index(_WAITING_UNTIL)]
    return None


def waiting_state(step_name: str, until: datetime, wake_at: datetime | None = None) -> State[Any]:
    """Suspended at a Wait due `until`; the run wakes at `wake_at` (the deadline, if sooner)."""
    return Scheduled(scheduled_time=wake_at or until, name=WAITING, message=waiting_message(step_name, until))


_HANDED_OFF_AT = "sync limit reached at step '"
_HANDED_OFF_END = "': continuing in async mode"


def handed_off_state(step_name: str | None = None) -> State[Any]:
    """A sync call at its limit, for a worker to continue now; the message names the step
    that was running (`handed_off_step` reads it back: its task run may lag the state)."""
    message = (
        f"{_HANDED_OFF_AT}{step_name}{_HANDED_OFF_END}" if step_name else "sync limit reached: continuing in async mode"
    )
    return Scheduled(scheduled_time=datetime.now(UTC) - timedelta(seconds=1), name=HANDED_OFF, message=message)


def handed_off_step(message: str | None) -> str | None:
    if message and message.startswith(_HANDED_OFF_AT) and message.endswith(_HANDED_OFF_END):
        return message[len(_HANDED_OFF_AT) : -len(_HANDED_OFF_END)]
    return None


def retry_state(attempt: int, retry_at: datetime, error: dict[str, Any]) -> State[Any]:
    return Scheduled(
        scheduled_time=retry_at,
        name=AWAITING_RETRY,
        message=f"attempt {attempt} failed at step '{error.get('step_name')}': {error.get('message')}",
    )


def rescheduled_state(reason: str) -> State[Any]:
    return Scheduled(scheduled_time=datetime.now(UTC), name="Scheduled", message=reason)


_CLAIMED_BY = "claimed by "
_WORKER = "worker "


def running_state(worker: str) -> State[Any]:
    return Running(message=f"{_WORKER}{worker}")


_CLAIM_NAMESPACE = UUID("5f0e3a52-9d1c-4c3e-8a57-0c1a6b7d2e41")


def claim_state(flow_run_id: UUID, worker: str) -> State[Any]:
    """Running, as a worker's claim: the same `transition_id` for every claim of a run, so
    that Prefect's PreventDuplicateTransitions rejects a claim proposed while the run is
    Running from another claim (Running -> Running is otherwise accepted)."""
    state = running_state(worker)
    state.state_details.transition_id = claim_transition_id(flow_run_id)
    return state


def claim_transition_id(flow_run_id: UUID) -> UUID:
    return uuid5(_CLAIM_NAMESPACE, str(flow_run_id))


def owner_of(flow_run: FlowRun) -> str | None:
    """The worker named in the claim/running state message, None for sync callers."""
    message = (flow_run.state.message if flow_run.state else None) or ""
    for prefix in (_CLAIMED_BY, _WORKER):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return None


def final_state(status: str, error: dict[str, Any] | None, record: Any) -> State[Any]:
    """Completed or Failed, with the outcome's record as the data."""
    if status == "success":
        return Completed(data=record, message="success")
    error = error or {}
    return Failed(data=record, message=f"step '{error.get('step_name')}' failed: {error.get('message')}")


REFUSED = "Refused"


def refused_state(worker: str, reason: str) -> State[Any]:
    """A run a worker may not run (a draft nobody pinned, a version it does not know)."""
    return Failed(name=REFUSED, message=f"refused by worker {worker}: {reason}")


def definition_source_of(flow_run: FlowRun) -> Any:
    """The definition text a run carries in its context (None when it carries none)."""
    context = flow_run.context if isinstance(flow_run.context, dict) else {}
    flowdeck = context.get("flowdeck")
    return flowdeck.get("definition") if isinstance(flowdeck, dict) else None


def cancelled_state() -> State[Any]:
    return Cancelled(message="cancelled")


def cancelling_state() -> State[Any]:
    return Cancelling(message="cancel requested")


def due_of(flow_run: FlowRun) -> datetime:
    """When a Scheduled run falls due (now when it has no time)."""
    scheduled = flow_run.state.state_details.scheduled_time if flow_run.state else None
    return scheduled or datetime.now(UTC)


# status --------------------------------------------------------------------------------
TERMINAL = frozenset({"success", "failed", "cancelled"})
ACTIVE_STATE_TYPES = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"]
STATE_TYPES_OF_STATUS: dict[str, list[str]] = {
    "pending": ["SCHEDULED", "PENDING"],
    "waiting": ["SCHEDULED", "PAUSED"],
    "running": ["RUNNING", "CANCELLING"],
    "success": ["COMPLETED"],
    "failed": ["FAILED", "CRASHED"],
    "cancelled": ["CANCELLED"],
}
# a task run (a step) by its state type; the flow run's names do not apply to steps
_STEP_STATUS = {
    "SCHEDULED": "pending",
    "PENDING": "pending",
    "PAUSED": "waiting",
    "RUNNING": "running",
    "CANCELLING": "running",
    "COMPLETED": "success",
    "CANCELLED": "cancelled",
    "FAILED": "failed",
    "CRASHED": "failed",
}
OPEN_STEP_STATE_TYPES = ("RUNNING", "PENDING")


def status_of(flow_run: FlowRun) -> str:
    state = flow_run.state
    if state is None:
        return "pending"
    kind = state.type
    if kind == StateType.SCHEDULED:
        if state.name == HANDED_OFF:  # a sync call reached its limit; a worker continues
            return "running"
        return "waiting" if state.name == WAITING else "pending"
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


def step_status(state_type: str) -> str:
    """A step's status from its task run's state type."""
    return _STEP_STATUS.get(state_type, state_type.lower())


def resume_at_of(flow_run: FlowRun) -> datetime | None:
    """When a waiting or retrying run resumes (None for other runs)."""
    state = flow_run.state
    if state is not None and state.type == StateType.SCHEDULED and state.name in (WAITING, AWAITING_RETRY):
        return state.state_details.scheduled_time
    return None


# result records ------------------------------------------------------------------------
# Named by the execution id's hex: for executions made before the outbox that is the flow
# run id's hex, so their records keep their keys.
def journal_key(execution_id: str, step_key: str) -> str:
    return f"flowdeck-{record_key_of(execution_id)}-step-{step_key}"


def outcome_key(execution_id: str) -> str:
    return f"flowdeck-{record_key_of(execution_id)}-outcome"
