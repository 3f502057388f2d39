"""The engine's front door: what the CLI, the HTTP API and the TUI call.

One `Flowdeck` per process holds the loaded definitions, one pooled Prefect API client,
one pooled HTTP client for http steps, the outbox (the local commit point) and the drain
that writes it to Prefect (started on first use, stopped by `aclose` after draining what
this process committed, for up to `DRAIN_ON_CLOSE_SECONDS`). Every method either does everything it promises or
raises a `FlowdeckError` before anything has started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flowdeck.definition.catalog import Catalog, load_catalog
from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import InvalidInput
from flowdeck.execution.sync import SyncCall, run_sync
from flowdeck.runtime.inputs import validate_input
from flowdeck.store import read_model
from flowdeck.store.drain import Drainer, check_room
from flowdeck.store.outbox import Outbox
from flowdeck.store.prefect_api import PrefectAPI

DRAIN_ON_CLOSE_SECONDS = 5.0
# Backpressure: executions committed here and not yet in Prefect beyond which new sync
# calls and submissions are refused with 503 (about 1 KB of outbox each; Prefect down).
BACKLOG_LIMIT = 10_000


@dataclass
class Flowdeck:
    catalog: Catalog
    api: PrefectAPI
    http: httpx.AsyncClient
    outbox: Outbox = field(default_factory=Outbox.default)
    backlog_limit: int = BACKLOG_LIMIT
    _drainer: Drainer | None = None

    @property
    def drainer(self) -> Drainer:
        if self._drainer is None:
            from flowdeck.execution.submission import deployment_for

            async def resolve(payload: dict[str, Any]) -> Any:
                return await deployment_for(self, payload)

            self._drainer = Drainer(self.api, self.outbox, resolve)
        return self._drainer

    def start_drain(self) -> None:
        """Start writing the outbox to Prefect from this process (API, worker, dashboard)."""
        self.drainer.start()

    def source_of(self, definition: WorkflowDefinition) -> dict[str, str] | None:
        """The definition's file content, stored with each execution it starts."""
        for item in self.catalog.files:
            if item.path == definition.path:
                return {"path": item.path, "text": item.source_text}
        return None

    @classmethod
    def open(
        cls, definitions: str | Path | None = None, api_url: str | None = None, catalog: Catalog | None = None
    ) -> Flowdeck:
        return cls(
            catalog=catalog if catalog is not None else load_catalog(definitions),
            api=PrefectAPI(api_url),
            http=httpx.AsyncClient(follow_redirects=True),
        )

    def reload(self, definitions: str | Path | None = None) -> None:
        self.catalog = load_catalog(definitions)

    async def aclose(self) -> None:
        if self._drainer is not None:
            await self._drainer.close(DRAIN_ON_CLOSE_SECONDS)
        await self.api.aclose()
        await self.http.aclose()

    async def __aenter__(self) -> Flowdeck:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------------------------
    def resolve(
        self, workflow_id: str, version: str | int | None = "latest", *, allow_draft: bool
    ) -> WorkflowDefinition:
        return self.catalog.resolve(workflow_id, version if version is not None else "latest", allow_draft=allow_draft)

    def prepare(
        self, workflow_id: str, version: str | int | None, input_data: Any, *, allow_draft: bool
    ) -> WorkflowDefinition:
        """Resolve and check everything a start needs; raises before anything runs."""
        definition = self.resolve(workflow_id, version, allow_draft=allow_draft)
        if not isinstance(input_data, dict):
            raise InvalidInput(
                f"input_data must be a JSON object, not {type(input_data).__name__}",
                details=[{"field": "(input)", "message": "must be an object"}],
            )
        validate_input(definition, input_data)
        return definition

    async def run_sync(
        self,
        workflow_id: str,
        version: str | int | None,
        input_data: Any,
        *,
        allow_draft: bool = False,
        trigger: dict[str, Any] | None = None,
    ) -> SyncCall:
        definition = self.prepare(workflow_id, version, input_data, allow_draft=allow_draft)
        check_room(self.outbox, self.backlog_limit)
        return await run_sync(
            definition,
            input_data,
            outbox=self.outbox,
            drainer=self.drainer,
            http=self.http,
            resolve_workflow=self.resolve_for_step,
            trigger=trigger,
            source=self.source_of(definition),
        )

    def resolve_for_step(self, workflow_id: str, version: str | int) -> WorkflowDefinition:
        """The definition a `workflow` step runs (published or live only)."""
        return self.catalog.resolve(workflow_id, version, allow_draft=False)

    async def submit(
        self,
        workflow_id: str,
        version: str | int | None,
        input_data: Any,
        *,
        allow_draft: bool = False,
        idempotency_key: str | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start an async execution; answers {"status": "pending", "execution_id"} at once."""
        from flowdeck.execution.submission import submit

        definition = self.prepare(workflow_id, version, input_data, allow_draft=allow_draft)
        return await submit(
            self,
            definition,
            input_data,
            idempotency_key=idempotency_key,
            trigger=trigger,
            source=self.source_of(definition),
        )

    async def status(self, execution_id: str) -> dict[str, Any]:
        self.start_drain()
        return await read_model.get_status(self.api, execution_id, self.outbox)

    def backlog(self) -> dict[str, Any]:
        """What the outbox holds that Prefect does not yet (for status pages and /healthz)."""
        drainer = self._drainer
        return {
            **self.outbox.backlog(),
            "limit": self.backlog_limit,
            "drain_failures": drainer.failures if drainer else 0,
            "drain_last_error": drainer.last_error if drainer else None,
        }

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        from flowdeck.execution.submission import cancel

        return await cancel(self, execution_id)

    async def recent_executions(self, limit: int = 200, **filters: Any) -> list[dict[str, Any]]:
        """Newest first; filters: workflow_id, statuses (flowdeck names)."""
        return await read_model.recent(self.api, limit=limit, outbox=self.outbox, **filters)


__all__ = ["Flowdeck"]
