"""Execution endpoints: sync and async starts, batches, status and cancel.

The documented bodies come from the engine unchanged (flows/sync.py, flows/async_mode.py,
flows/executions.py); this module only maps them to status codes:
sync 200 for a finished execution (success or failed), 202 for a hand-off; async 202.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from flowdeck import settings
from flowdeck.api.deps import Engine, engine_of
from flowdeck.api.errors import ApiError
from flowdeck.api.models import (
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
from flowdeck.errors import AlreadyEnded, FlowdeckError, InvalidInput, NotFound, PrefectUnavailable
from flowdeck.runtime.inputs import input_problems

router = APIRouter(prefix="/workflow/workflow-executions", tags=["executions"])

# A batch starts settings.api_batch_concurrency() executions at once (4): Prefect on SQLite
# serialises writes and answers 503 when they pile up: measured on 2 cores, 1-4 concurrent
# creates beat 20 (which failed one start in ten). PostgreSQL takes more.
BATCH_ATTEMPTS = 3

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
    try:
        call = await engine.run_sync(request.workflow_id, request.workflow_version, request.input_data)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this request itself is being cancelled (client gone, shutdown)
        # The engine cancels its own flow-run creation when the sync limit passes while
        # Prefect is still creating it (flows/sync.py awaits that task unshielded).
        raise ApiError(
            PrefectUnavailable.http_status,
            PrefectUnavailable.code,
            "Prefect did not record the execution within the sync limit (it is overloaded); "
            "nothing with side effects ran; try again or use the async endpoint",
        ) from None
    finished = call.body["status"] in ("success", "failed")
    # The final state reaches Prefect after the answer, through this process's drainer,
    # which runs all along (and drains what it can when the API stops). Nothing here
    # waits for it: a waiter per call polled the outbox ten times a second until Prefect
    # held its execution, ~2,000 reads a second after a burst of 200, on the loop that
    # answers the callers.
    return JSONResponse(call.body, status_code=200 if finished else 202)


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
    batch_key = idempotency_key or f"batch-{uuid.uuid4().hex}"
    results = await start_all(engine, definition, request.inputs, batch_key)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        started = [r["execution_id"] if isinstance(r, dict) else None for r in results]
        first = failures[0]
        reason = first.message if isinstance(first, FlowdeckError) else "an internal error"
        raise ApiError(
            PrefectUnavailable.http_status,
            PrefectUnavailable.code,
            f"{len(failures)} of {len(results)} executions could not be started ({reason}); "
            f"{len(results) - len(failures)} were; details.started lists their ids by index (null: not "
            "started); send the same batch again with the header Idempotency-Key: "
            f"{batch_key} to start only the missing ones",
            {"started": started, "idempotency_key": batch_key},
        )
    return JSONResponse(
        {"workflow_id": definition.id, "workflow_version": definition.version, "executions": results},
        status_code=202,
    )


async def start_all(engine: Engine, definition: Any, inputs: list[dict[str, Any]], batch_key: str) -> list[Any]:
    """Submit every input, a few at a time, retrying what Prefect was too busy for.

    Item i carries the idempotency key `<batch_key>:<i>`, so a retry (ours, or the caller
    resending the batch with the same key) never starts an item twice. Pinned to the resolved version: a batch never
    straddles a change of the live version.
    """
    gate = asyncio.Semaphore(batch_concurrency())
    results: list[Any] = [None] * len(inputs)

    async def start(index: int) -> None:
        async with gate:
            try:
                results[index] = await engine.submit(
                    definition.id, definition.version, inputs[index], idempotency_key=f"{batch_key}:{index}"
                )
            except Exception as error:  # reported per index; FlowdeckErrors carry the reason
                results[index] = error

    pending = list(range(len(inputs)))
    for attempt in range(BATCH_ATTEMPTS):
        if attempt:
            await asyncio.sleep(0.5 * attempt)
        await asyncio.gather(*(start(index) for index in pending))
        pending = [i for i in pending if isinstance(results[i], PrefectUnavailable)]
        if not pending:
            break
    return results


def batch_concurrency() -> int:
    return settings.api_batch_concurrency()


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
        raise ApiError(AlreadyEnded.http_status, AlreadyEnded.code, error.message) from None
    return JSONResponse(body)


__all__ = ["router"]
