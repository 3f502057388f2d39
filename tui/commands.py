"""Command palette (ctrl+p): launch a workflow, open an execution, filter the table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from flowdeck.tui.client import STATUSES

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp

__all__ = ["FlowdeckCommands"]

MAX_EXECUTIONS = 500


class FlowdeckCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        for version in app.client.workflows():
            yield (
                f"Launch {version.workflow_id} v{version.version} ({version.status})",
                partial(app.launch, version),
                "open the launch form",
            )
        yield ("Clear filters", app.clear_filters, "show every execution")
        for status in STATUSES:
            yield (f"Filter status: {status}", partial(app.filter_status, status), "executions table")
        for workflow_id in sorted({v.workflow_id for v in app.client.workflows()}):
            yield (f"Filter workflow: {workflow_id}", partial(app.filter_workflow, workflow_id), "executions table")
        rows = sorted(app.table.known.values(), key=lambda r: r.created_at or r.started_at or 0, reverse=True)
        for row in rows[:MAX_EXECUTIONS]:
            yield (
                f"Open {row.execution_id} {row.workflow_id}@{row.version} {row.status}",
                partial(app.open_execution, row.execution_id),
                "execution detail",
            )

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            if text.startswith(("Launch", "Clear", "Filter status")):
                yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
