"""Async mode: start an execution as a deployment run and answer with its id at once.

The answer is given only once the flow run exists in Prefect (`Scheduled`), so an
execution id a caller holds always refers to work that will run: nothing is kept only in
this process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import StateType
from prefect.states import Scheduled

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import AlreadyEnded, NotRunnable
from flowdeck.execution.engine import Engine
from flowdeck.store import encoding, transitions
from flowdeck.store.deployments import deployment_name, sync_deployments
from flowdeck.store.read_model import read_flow_run

IDEMPOTENCY_WINDOW = timedelta(hours=24)

_deployment_ids: dict[tuple[str, str], UUID] = {}


async def deployment_id(engine: Engine, definition: WorkflowDefinition) -> UUID:
    """The deployment of a published or live version (created on first use)."""
    if definition.status == "draft":
        raise NotRunnable(
            f"'{definition.key}' is a draft: drafts run only in sync mode from the CLI or TUI; "
            "set `status: published` (or live) to run it async"
        )
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
) -> dict[str, Any]:
    """Create the flow run (Scheduled now) for a worker to pick up; input already checked."""
    deployment = await deployment_id(engine, definition)
    now = datetime.now(UTC)
    key = idempotency_key
    for generation in range(1, 1000):
        flow_run = await engine.api.create_flow_run(
            flow_name=definition.id,
            name=encoding.flow_run_name(definition),
            parameters=input_data,
            state=Scheduled(scheduled_time=now),
            tags=encoding.run_tags(definition, mode),
            context={"flowdeck": {"mode": mode, "trigger": trigger or {"type": "manual"}}},
            labels=encoding.first_attempt_labels(),
            deployment_id=deployment,
            idempotency_key=key,
        )
        # Prefect keeps idempotency keys forever; flowdeck promises 24 h, so an older
        # run with the same key makes way for a new one under a derived key.
        if key is None or flow_run.created is None or now - flow_run.created < IDEMPOTENCY_WINDOW:
            break
        key = f"{idempotency_key}#{generation}"
    status = encoding.status_of(flow_run) if flow_run.created and flow_run.created < now else "pending"
    return {"status": status, "execution_id": encoding.execution_id_for(flow_run.id)}


async def cancel(engine: Engine, execution_id: str) -> dict[str, Any]:
    """Cancel a pending, running or waiting execution; no further step runs."""
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
