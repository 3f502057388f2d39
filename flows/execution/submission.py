"""Async mode: commit an execution and answer with its id at once; a worker runs it.

The answer is given once the execution is committed to the outbox (a local SQLite file,
fsynced), not once Prefect has it: the drain (`flowdeck.store.drain`) creates the
deployment flow run (`Scheduled`) behind the answer, with the execution id as its
idempotency key, and retries through a Prefect outage, so an execution id a caller holds
always refers to work that will run. A keyed submission's id is derived from its key, so
every process (on any machine) gives the same key the same execution.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import StateType

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import AlreadyEnded, NotRunnable
from flowdeck.execution.engine import Engine
from flowdeck.execution.sync import created_payload
from flowdeck.store import encoding, transitions
from flowdeck.store.deployments import deployment_name, sync_deployments
from flowdeck.store.drain import check_room
from flowdeck.store.read_model import read_flow_run

IDEMPOTENCY_WINDOW = timedelta(hours=24)
KEYED_FLUSH_SECONDS = 2.0  # a keyed submission waits this long to learn whether its key is old

_deployment_ids: dict[tuple[str, str], UUID] = {}


def refuse_draft(definition: WorkflowDefinition) -> None:
    if definition.status == "draft":
        raise NotRunnable(
            f"'{definition.key}' is a draft: drafts run only in sync mode from the CLI or TUI; "
            "set `status: published` (or live) to run it async"
        )


async def deployment_id(engine: Engine, definition: WorkflowDefinition) -> UUID:
    """The deployment of a published or live version (created on first use)."""
    refuse_draft(definition)
    cache_key = (engine.api.api_url, definition.key)
    if cache_key not in _deployment_ids:
        found = await engine.api.read_deployment_by_name(definition.id, deployment_name(definition))
        if found is None:
            ids = await sync_deployments(engine.api, [definition], Path.cwd())
            _deployment_ids[cache_key] = ids[definition.key]
        else:
            _deployment_ids[cache_key] = found.id
    return _deployment_ids[cache_key]


async def submit(
    engine: Engine,
    definition: WorkflowDefinition,
    input_data: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    trigger: dict[str, Any] | None = None,
    mode: str = "async",
    source: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Commit the execution for a worker to pick up; input already checked."""
    refuse_draft(definition)
    check_room(engine.outbox, engine.backlog_limit)
    now = datetime.now(UTC)

    def payload_for(execution_id: str) -> dict[str, Any]:
        payload = created_payload(definition, execution_id, input_data, mode=mode, trigger=trigger, source=source)
        payload["deployment"] = {"workflow_id": definition.id, "version": definition.version}
        payload["scheduled_at"] = now.isoformat()
        payload["idempotency_key"] = execution_id
        return payload

    if idempotency_key is None:
        execution_id = encoding.mint_execution_id()
        _commit(engine, definition, execution_id, payload_for(execution_id))
        await engine.outbox.committed()  # the commit point: on disk before the answer leaves
        return {"status": "pending", "execution_id": execution_id}
    for generation in range(0, 1000):
        key = idempotency_key if generation == 0 else f"{idempotency_key}#{generation}"
        execution_id = encoding.keyed_execution_id(definition.id, key)
        if not _commit(engine, definition, execution_id, payload_for(execution_id)):
            return {"status": "pending", "execution_id": execution_id}  # submitted here already
        if not await engine.drainer.flush(execution_id, KEYED_FLUSH_SECONDS):
            return {"status": "pending", "execution_id": execution_id}  # Prefect is behind: the id stands
        row = engine.outbox.execution(execution_id)
        flow_run = await engine.api.read_flow_run(UUID(row.flow_run_id)) if row and row.flow_run_id else None
        if flow_run is None or flow_run.created is None or flow_run.created >= now - timedelta(seconds=1):
            return {"status": "pending", "execution_id": execution_id}
        # Prefect keeps idempotency keys forever; flowdeck promises 24 h, so an older run
        # with the same key makes way for a new one under a derived key.
        if now - flow_run.created < IDEMPOTENCY_WINDOW:
            return {"status": encoding.status_of(flow_run), "execution_id": execution_id}
    raise NotRunnable(f"idempotency key {idempotency_key!r} was used 1000 times")


def _commit(engine: Engine, definition: WorkflowDefinition, execution_id: str, payload: dict[str, Any]) -> bool:
    """Buffer the execution in the outbox (False: it is there already)."""
    fresh = engine.outbox.create(
        execution_id,
        mode=payload["context"]["flowdeck"]["mode"],
        workflow_id=definition.id,
        version=definition.version,
        status="pending",
        payload=payload,
    )
    engine.drainer.start()
    return fresh


async def deployment_for(engine: Engine, payload: dict[str, Any]) -> UUID:
    """The deployment a committed submission's flow run belongs to (for the drain)."""
    wanted = payload["deployment"]
    definition = engine.catalog.resolve(wanted["workflow_id"], int(wanted["version"]), allow_draft=False)
    return await deployment_id(engine, definition)


async def cancel(engine: Engine, execution_id: str) -> dict[str, Any]:
    """Cancel a pending, running or waiting execution; no further step runs."""
    await engine.drainer.flush(execution_id)  # committed here, perhaps not yet in Prefect
    flow_run = await read_flow_run(engine.api, execution_id)
    status = encoding.status_of(flow_run)
    if status in encoding.TERMINAL:
        raise AlreadyEnded(f"execution {execution_id} already ended ({status}); nothing to cancel")
    if flow_run.state_type == StateType.RUNNING:
        # The worker running it sees the Cancelling event, stops at once and marks it
        # Cancelled; if it died, recovery does.
        await transitions.request_cancel(engine.api, flow_run.id)
    else:
        await transitions.cancel(engine.api, flow_run.id)
    return {
        "status": "cancelled" if flow_run.state_type != StateType.RUNNING else "cancelling",
        "execution_id": execution_id,
    }
