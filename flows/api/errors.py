"""Every error the API answers, as one JSON envelope: {"error": {"code", "message", "details"}}.

    engine errors (flowdeck.errors)   the error class's `http_status` and `code` (its docstring
                                      draws the tree): NotFound 404, InvalidInput and
                                      NotRunnable 422, PrefectUnavailable 503, any other 409;
                                      InvalidInput's details: [{field, message}]

    request problems
    body is not JSON                  400     malformed_json
    body/params break the models      422     invalid_request    details: [{field, message}]
    body over the size limit          413     body_too_large
    no or wrong bearer token          401     unauthorized (says nothing else)
    unknown path / method             404 / 405

A bug in flowdeck answers 500 `internal_error` with a reference to the logged traceback,
never the traceback itself.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.errors import FlowdeckError, InvalidInput, PrefectUnavailable

log = logging.getLogger("flowdeck.api")


class ApiError(Exception):
    """An answer other than success, raised from a handler."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}}, status_code=status, headers=headers
    )


def status_for(error: FlowdeckError) -> int:
    return error.http_status


def from_flowdeck(error: FlowdeckError) -> JSONResponse:
    details = error.details
    if isinstance(error, InvalidInput) and details is None:
        details = []
    return error_response(status_for(error), error.code, error.message, details)


def _field(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    # pydantic names union members ("int", "constrained-str"): not a field a caller wrote
    parts = [p for p in parts if not (isinstance(p, str) and (p in ("int", "str") or "constrained" in p))]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    details: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        field = _field(tuple(error.get("loc", ())))
        kind = error.get("type", "")
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a field of this body (misspelt?)"
        elif field == "workflow_version" or field.endswith(".workflow_version"):
            message = 'must be "latest" or a version number such as 3 or "3"'
        else:
            message = str(error.get("msg", "is not valid"))
        if (field, message) not in seen:
            seen.add((field, message))
            details.append({"field": field, "message": message})
    return details


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        position = (broken.get("ctx") or {}).get("error", "")
        return error_response(
            400,
            "malformed_json",
            f"the request body is not valid JSON ({position})" if position else "the request body is not valid JSON",
        )
    content_type = request.headers.get("content-type", "")
    if any(tuple(e.get("loc", ())) == ("body",) for e in errors) and content_type and "json" not in content_type:
        return error_response(
            422,
            "invalid_request",
            f"send the body as JSON with Content-Type: application/json (got {content_type!r})",
            [{"field": "(body)", "message": "must be a JSON object"}],
        )
    details = validation_details(errors)
    listed = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return error_response(422, "invalid_request", f"the request is not valid: {listed}", details)


async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _on_flowdeck(request: Request, exc: FlowdeckError) -> JSONResponse:
    if isinstance(exc, PrefectUnavailable):
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return from_flowdeck(exc)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no endpoint {request.method} {request.url.path}; see /docs")
    if exc.status_code == 405:
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}; see /docs",
            headers=dict(exc.headers or {}),
        )
    return error_response(exc.status_code, "http_error", str(exc.detail), headers=dict(exc.headers or {}))


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", f"flowdeck hit a bug; the server log has the details under reference {reference}"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(FlowdeckError, _on_flowdeck)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_bug)


__all__ = ["ApiError", "error_response", "from_flowdeck", "install", "status_for", "validation_details"]
