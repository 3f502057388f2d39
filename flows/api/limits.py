"""Request body size limits (413 before a handler sees the body).

    MAX_BODY_BYTES        1 MiB   every endpoint but the batch
    MAX_BATCH_BODY_BYTES  16 MiB  POST /workflow/workflow-executions/batch (1,000 inputs)

Both `Content-Length` and chunked bodies are held to the limit: the body is read here (up
to the limit) and replayed to the app, so nothing is parsed or started for an oversized one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.api.errors import error_response

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024
BATCH_PATH = "/workflow/workflow-executions/batch"


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
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


__all__ = ["BodyLimit", "MAX_BATCH_BODY_BYTES", "MAX_BODY_BYTES", "limit_for"]
