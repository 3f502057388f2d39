"""The ASGI app: `create_app()` wires auth, body limits, error envelopes and the routers.

    request -> BearerAuth (401) -> BodyLimit (413) -> FastAPI routing and models (400/404/422)
            -> handler -> engine (flowdeck.execution.service.Flowdeck) -> Prefect

The engine is opened in the app's lifespan (so `create_app()` itself never imports
prefect); `flowdeck.local.prefect_server.configure_environment()` must have run in this process
before the app starts, which `flowdeck api` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from flowdeck.api import errors, executions, hooks, workflows
from flowdeck.api.auth import BearerAuth, load_tokens, require_tokens
from flowdeck.api.health import PrefectHealth
from flowdeck.api.limits import BodyLimit
from flowdeck.api.models import ErrorBody, Health
from flowdeck.errors import PrefectUnavailable
from flowdeck.execution.reloading import DefinitionsWatch

DESCRIPTION = """\
Run flowdeck workflows over HTTP: sync (wait for the result) and async (get an execution id,
poll it). Every endpoint except `/healthz`, `/openapi.json` and `/docs` needs
`Authorization: Bearer <token>`. Errors are `{"error": {"code", "message", "details"}}`.
"""

# Documented on every authenticated endpoint (schemathesis holds answers to these).
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not valid JSON."},
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token."},
    404: {"model": ErrorBody, "description": "Unknown workflow, version or execution."},
    413: {"model": ErrorBody, "description": "The body is over the size limit (1 MiB; batch 16 MiB)."},
    422: {"model": ErrorBody, "description": "The body or input_data is not valid; details name each field."},
    503: {"model": ErrorBody, "description": "The Prefect API cannot be reached."},
}

bearer = HTTPBearer(auto_error=False, description="A token from FLOWDECK_API_TOKENS or $FLOWDECK_HOME/api_tokens.")


def create_app(
    *,
    definitions: str | Path | None = None,
    tokens: list[str] | None = None,
    insecure_dev: bool = False,
    engine: Any = None,
) -> FastAPI:
    """The flowdeck API. `tokens` default to the configured ones (`flows.api.auth`);
    raises `NoTokens` when there are none unless `insecure_dev`. `engine` (a Flowdeck)
    is opened from `definitions` at start-up when not given."""
    tokens = load_tokens() if tokens is None else tokens
    require_tokens(tokens, insecure_dev)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        if own:
            from flowdeck.execution.service import Flowdeck

            app.state.engine = Flowdeck.open(definitions)
        else:
            app.state.engine = engine
        app.state.definitions_watch = DefinitionsWatch(app.state.engine.catalog.directory)
        app.state.prefect_health = PrefectHealth(app.state.engine.api.health)
        app.state.engine.start_drain()  # the outbox is written to Prefect from here too
        try:
            yield
        finally:
            await app.state.prefect_health.aclose()
            if own:
                await app.state.engine.aclose()
            from flowdeck.store.recording import flush_events

            await flush_events()

    app = FastAPI(
        title="flowdeck",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    errors.install(app)
    secured = [Depends(bearer)]
    for router in (executions.router, workflows.router, hooks.router):
        app.include_router(router, dependencies=secured, responses=COMMON_ERRORS)

    @app.get(
        "/healthz",
        tags=["health"],
        summary="The API and its Prefect server are reachable (no token needed)",
        response_model=Health,
        responses={503: {"model": ErrorBody, "description": "The Prefect API cannot be reached."}},
    )
    async def healthz() -> JSONResponse:
        prefect = await app.state.prefect_health.observe()
        if not prefect.healthy:
            return errors.error_response(
                PrefectUnavailable.http_status,
                PrefectUnavailable.code,
                "the Prefect API is not answering; see the API server's log",
            )
        return JSONResponse(
            {
                "status": "ok",
                "prefect": "ok",
                "prefect_answered_s_ago": round(prefect.age_s, 3),
                "outbox": app.state.engine.backlog(),
            }
        )

    # Outermost first: auth before the body is even read, then the size limit.
    app.add_middleware(BodyLimit)
    app.add_middleware(BearerAuth, tokens=tokens, enabled=not (insecure_dev and not tokens))
    return app


__all__ = ["create_app"]
