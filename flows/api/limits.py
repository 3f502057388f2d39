"""Request body limits, checked before a handler sees the body.

    MAX_BODY_BYTES        1 MiB   every endpoint but the batch                        413
    MAX_BATCH_BODY_BYTES  16 MiB  POST /workflow/workflow-executions/batch (1,000 inputs)

Both `Content-Length` and chunked bodies are held to the limit: the body is read here (up
to the limit) and replayed to the app, so nothing is parsed or started for an oversized one.

A JSON body is then parsed strictly with the input bounds of `flowdeck.runtime.input_bounds`
(what Prefect can store): not UTF-8, not JSON, NaN/Infinity, a number out of range -> 400
`malformed_json`; nesting deeper than MAX_JSON_DEPTH or a lone surrogate -> 422
`invalid_request` naming the field; `input_data`, an item of a batch's `inputs` or a webhook
body over its size bound -> 413 `input_too_large`. So such a request never starts anything.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.api.errors import error_response
from flowdeck.runtime.input_bounds import (
    MAX_WEBHOOK_BYTES,
    InputTooLarge,
    JsonRefused,
    check_size,
    check_value,
    parse_strict,
)

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024
BATCH_PATH = "/workflow/workflow-executions/batch"
HOOKS_PREFIX = "/workflow/hooks/"
BODY_DEPTH = 2  # levels of a request body around an input: {"inputs": [ <input> ]}
_OFF_LOOP = 64 * 1024  # bodies larger than this are parsed and checked on a worker thread


def limit_for(path: str) -> int:
    return MAX_BATCH_BODY_BYTES if path == BATCH_PATH else MAX_BODY_BYTES


def _too_large(limit: int):  # type: ignore[no-untyped-def]
    return error_response(
        413,
        "body_too_large",
        f"the request body is larger than {limit // 1024} KiB, the limit of this endpoint",
        {"limit_bytes": limit},
    )


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # A 16 MiB batch takes over a second to parse and check: never on the event loop
        refused = await anyio.to_thread.run_sync(_refusal, scope, body) if size > _OFF_LOOP else _refusal(scope, body)
        if refused is not None:
            await refused(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _refusal(scope: Scope, body: bytes):  # type: ignore[no-untyped-def]
    """The error answer for a JSON body outside the input bounds, else None."""
    path = scope["path"]
    hook = path.startswith(HOOKS_PREFIX)
    # lower-cased: FastAPI reads `application/JSON` as JSON too, and it must not pass unchecked
    content_type = next((value for name, value in scope.get("headers", ()) if name == b"content-type"), b"").lower()
    if not body.strip() or not (hook or not content_type or b"json" in content_type):
        return None  # FastAPI answers a body that is not JSON (422: send it as JSON)
    try:
        if hook:
            check_size(parse_strict(body, "the webhook body"), "the webhook body", MAX_WEBHOOK_BYTES)
        else:
            _check_inputs(parse_strict(body, "the request body", extra_depth=BODY_DEPTH))
    except InputTooLarge as error:
        return error_response(413, "input_too_large", error.message, {"field": error.where, "limit_bytes": error.limit})
    except JsonRefused as error:
        if error.malformed:
            return error_response(400, "malformed_json", error.message)
        field = error.where or "(body)"
        return error_response(
            422,
            "invalid_request",
            f"the request is not valid: {error.message}",
            [{"field": field, "message": error.message}],
        )
    return None


def _check_inputs(body: Any) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("input_data"), dict):
        check_value(body["input_data"], "input_data")
        check_size(body["input_data"], "input_data")
    inputs = body.get("inputs")
    for index, item in enumerate(inputs if isinstance(inputs, list) else []):
        # no second walk: at BODY_DEPTH, the body's own check held each item to exactly its bounds
        check_size(item, f"inputs[{index}]")


__all__ = ["BodyLimit", "MAX_BATCH_BODY_BYTES", "MAX_BODY_BYTES", "limit_for"]
