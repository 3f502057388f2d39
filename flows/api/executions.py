"""Execution endpoints: sync and async starts, batches, status and cancel.

The documented bodies come from the engine unchanged (flows/sync.py, flows/async_mode.py,
flows/executions.py); this module only maps them to status codes:
sync 200 for a finished execution (success or failed), 202 for a hand-off; async 202.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from flows.api.deps import Engine, engine_of
from flows.api.errors import ApiError
from flows.api.models import (
    BatchRequest,
    BatchStarted,
    Cancelled,
    ExecutionRequest,
    ExecutionStatus,
    Handoff,
    Started,
    SyncFailure,
    SyncSuccess,
)
from flows.errors import FlowdeckError, InvalidInput, NotFound, PrefectUnavailable
from flows.inputs import input_problems

router = APIRouter(prefix="/workflow/workflow-executions", tags=["executions"])

BATCH_CONCURRENCY = 20

IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=255,
    description="The same key within 24 h answers the same execution instead of starting another.",
)
ExecutionId = Path(description="exec_<32 hex>", examples=["exec_0f3c2e5a9b7d4c1e8f6a2b3c4d5e6f70"])


@router.post(
    "",
    summary="Run a workflow and wait for its result (sync)",
    response_model=SyncSuccess | SyncFailure,
    responses={
        200: {"description": "The execution finished; `status` says success or failed."},
        202: {"model": Handoff, "description": "The sync limit was reached; it continues async: poll it."},
    },
)
async def run_sync(request: ExecutionRequest, engine: Engine = Depends(engine_of)) -> JSONResponse:
    call = await engine.run_sync(request.workflow_id, request.workflow_version, request.input_data)
    finished = call.body["status"] in ("success", "failed")
    # The final state reaches Prefect after the answer: the caller does not wait for it.
    return JSONResponse(call.body, status_code=200 if finished else 202, background=BackgroundTask(call.finish))


@router.post(
    "/async",
    summary="Start a workflow and answer its execution id at once (async)",
    status_code=202,
    response_model=Started,
)
async def run_async(
    request: ExecutionRequest,
    engine: Engine = Depends(engine_of),
    idempotency_key: str | None = IdempotencyKey,
) -> JSONResponse:
    body = await engine.submit(
        request.workflow_id, request.workflow_version, request.input_data, idempotency_key=idempotency_key
    )
    return JSONResponse(body, status_code=202)


@router.post(
    "/batch",
    summary="Start one async execution per input (up to 1,000), answering ids in order",
    status_code=202,
    response_model=BatchStarted,
)
async def run_batch(
    request: BatchRequest,
    engine: Engine = Depends(engine_of),
    idempotency_key: str | None = IdempotencyKey,
) -> JSONResponse:
    definition = engine.resolve(request.workflow_id, request.workflow_version, allow_draft=False)
    problems: list[dict[str, str]] = []
    bad: list[int] = []
    for index, item in enumerate(request.inputs):
        found = input_problems(definition, item)
        if found:
            bad.append(index)
        for problem in found:
            field = f"inputs[{index}]" + ("" if problem["field"] == "(input)" else f".{problem['field']}")
            problems.append({"field": field, "message": problem["message"]})
    if problems:
        shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
        raise InvalidInput(
            f"{len(bad)} of {len(request.inputs)} inputs are not valid for workflow '{definition.key}' "
            f"(index {shown}); nothing was started",
            details=problems,
        )
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def start(index: int, item: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            key = f"{idempotency_key}:{index}" if idempotency_key else None
            # Pinned to the resolved version: a batch never straddles a new live version.
            return await engine.submit(definition.id, definition.version, item, idempotency_key=key)

    results = await asyncio.gather(
        *(start(index, item) for index, item in enumerate(request.inputs)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        started = [r["execution_id"] if isinstance(r, dict) else None for r in results]
        first = failures[0]
        reason = first.message if isinstance(first, FlowdeckError) else "an internal error"
        raise ApiError(
            503,
            PrefectUnavailable.code,
            f"{len(failures)} of {len(results)} executions could not be started ({reason}); "
            f"{len(results) - len(failures)} were; details.started lists their ids by index (null: not "
            "started); retry with the same Idempotency-Key to start only the missing ones",
            {"started": started},
        )
    return JSONResponse(
        {"workflow_id": definition.id, "workflow_version": definition.version, "executions": results},
        status_code=202,
    )


@router.get("/{execution_id}", summary="Status of an execution (sync or async)", response_model=ExecutionStatus)
async def get_status(execution_id: str = ExecutionId, engine: Engine = Depends(engine_of)) -> JSONResponse:
    return JSONResponse(await engine.status(execution_id))


@router.post(
    "/{execution_id}/cancel",
    summary="Cancel a pending, running or waiting execution",
    response_model=Cancelled,
    responses={409: {"description": "The execution already ended."}},
)
async def cancel(execution_id: str = ExecutionId, engine: Engine = Depends(engine_of)) -> JSONResponse:
    try:
        body = await engine.cancel(execution_id)
    except (NotFound, PrefectUnavailable):
        raise
    except FlowdeckError as error:
        raise ApiError(409, "already_ended", error.message) from None
    return JSONResponse(body)


__all__ = ["router"]
