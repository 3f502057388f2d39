"""What execution code needs from the engine (`flowdeck.execution.service.Flowdeck`),
typed without importing it (the service imports the execution modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import httpx

from flowdeck.definition.catalog import Catalog
from flowdeck.definition.model import WorkflowDefinition
from flowdeck.store.drain import Drainer
from flowdeck.store.outbox import Outbox
from flowdeck.store.prefect_api import PrefectAPI


class Engine(Protocol):
    @property
    def api(self) -> PrefectAPI: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def drainer(self) -> Drainer: ...

    @property
    def backlog_limit(self) -> int: ...

    @property
    def catalog(self) -> Catalog: ...

    def reload(self, definitions: str | Path | None = None) -> None: ...

    def resolve_for_step(self, workflow_id: str, version: str | int) -> WorkflowDefinition:
        """The definition a `workflow` step runs (published or live only)."""
        ...
