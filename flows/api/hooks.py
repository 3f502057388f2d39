"""Webhooks for external apps: any JSON body starts the live version asynchronously.

The body is the trigger payload (`trigger = {"type": "webhook", "payload": body}`,
readable in expressions as `trigger.payload`). It is also the input when it is an object
that validates against the input schema; otherwise the input is `{}`. When `{}` is not a
valid input either (the workflow requires fields the payload does not carry), nothing
starts and the answer is 422 naming the fields, so a misconfigured hook fails loudly
instead of running workflows on input they cannot use.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse

from flowdeck.api.deps import Engine, engine_of
from flowdeck.api.errors import ApiError
from flowdeck.api.models import Started
from flowdeck.errors import InvalidInput, NotRunnable
from flowdeck.runtime.inputs import input_problems

router = APIRouter(prefix="/workflow/hooks", tags=["webhooks"])

ANY_JSON: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any JSON value; an empty body counts as null.",
        "content": {"application/json": {"schema": {}}},
    }
}


async def _payload(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        where = ""
        if isinstance(error, json.JSONDecodeError):
            where = f" ({error.msg} at line {error.lineno} column {error.colno})"
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON{where}") from None


@router.post(
    "/{workflow_id}",
    summary="Webhook: start the live version with the body as trigger payload",
    status_code=202,
    response_model=Started,
    openapi_extra=ANY_JSON,
)
async def webhook(
    request: Request,
    workflow_id: str = Path(max_length=200, description="The workflow's `id`."),
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        max_length=255,
        description="e.g. the sender's delivery id: a redelivery answers the same execution.",
    ),
    engine: Engine = Depends(engine_of),
) -> JSONResponse:
    payload = await _payload(request)
    definition = engine.resolve(workflow_id, "latest", allow_draft=False)
    if definition.status != "live":
        raise NotRunnable(
            f"workflow '{workflow_id}' has no live version ('latest' is the published version "
            f"{definition.version}); webhooks start the live version only: set `status: live` on one",
            details={"workflow_id": workflow_id},
        )
    if isinstance(payload, dict) and not input_problems(definition, payload):
        input_data: dict[str, Any] = payload
    else:
        input_data = {}
        empty_problems = input_problems(definition, input_data)
        if empty_problems:
            problems = input_problems(definition, payload) if isinstance(payload, dict) else empty_problems
            listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            raise InvalidInput(
                f"the webhook body is not a valid input for workflow '{definition.key}' and the "
                f"workflow needs input ({listed}); nothing was started",
                details=problems,
            )
    trigger = {"type": "webhook", "payload": payload}
    body = await engine.submit(
        definition.id, definition.version, input_data, idempotency_key=idempotency_key, trigger=trigger
    )
    return JSONResponse(body, status_code=202)


__all__ = ["router"]
