"""The engine's front door: what the CLI, the HTTP API and the TUI call.

One `Flowdeck` per process holds the loaded definitions, one pooled Prefect API client and
one pooled HTTP client for http steps. Every method either does everything it promises or
raises a `FlowdeckError` before anything has started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flowdeck.definition.catalog import Catalog, load_catalog
from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import InvalidInput
from flowdeck.execution.sync import SyncCall, run_sync
from flowdeck.runtime.inputs import validate_input
from flowdeck.store import read_model
from flowdeck.store.prefect_api import PrefectAPI


@dataclass
class Flowdeck:
    catalog: Catalog
    api: PrefectAPI
    http: httpx.AsyncClient

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
        return await run_sync(
            definition,
            input_data,
            api=self.api,
            http=self.http,
            resolve_workflow=self.resolve_for_step,
            trigger=trigger,
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
        return await submit(self, definition, input_data, idempotency_key=idempotency_key, trigger=trigger)

    async def status(self, execution_id: str) -> dict[str, Any]:
        return await read_model.get_status(self.api, execution_id)

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        from flowdeck.execution.submission import cancel

        return await cancel(self, execution_id)

    async def recent_executions(self, limit: int = 200, **filters: Any) -> list[dict[str, Any]]:
        """Newest first; filters: workflow_id, statuses (flowdeck names)."""
        return await read_model.recent(self.api, limit=limit, **filters)


__all__ = ["Flowdeck"]
