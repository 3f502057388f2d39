"""Command palette (ctrl+p): every key's action on the screen it was opened from (read from
its bindings, so nothing is only a key), launching a workflow, viewing its structure,
opening an execution, filtering the table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from flowdeck.tui.client import STATUSES
from flowdeck.tui.help import VIM_ACTIONS, own_bindings

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp

__all__ = ["FlowdeckCommands"]

MAX_EXECUTIONS = 500
MOVES = VIM_ACTIONS - {"follow"}  # moving the cursor is not a command


def _key(binding: Binding) -> str:
    return binding.key_display or {"slash": "/", "escape": "esc", "question_mark": "?"}.get(binding.key, binding.key)


class FlowdeckCommands(Provider):
    def _key_actions(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        """The screen's own keys (the one the palette was opened from), then the App's."""
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        screen = self.screen
        seen: set[str] = set()
        chain = list(screen.focused.ancestors_with_self) if screen.focused is not None else []
        for node in [*chain, screen, app]:
            for binding in own_bindings(node):
                if not binding.description or binding.action in seen or binding.action in MOVES:
                    continue
                seen.add(binding.action)
                run = partial(app.call_later, app.run_action, binding.action, node)
                yield (binding.description, run, f"key {_key(binding)}")

    def _commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        yield from self._key_actions()
        workflows = app.client.workflows()
        for version in workflows:
            yield (
                f"Launch {version.workflow_id} v{version.version} ({version.status})",
                partial(app.launch, version),
                "open the launch form",
            )
        for workflow_id in sorted({v.workflow_id for v in workflows}):
            yield (f"Structure of {workflow_id}", partial(app.open_workflow, workflow_id), "steps, branches, diff")
            yield (f"Filter workflow: {workflow_id}", partial(app.filter_workflow, workflow_id), "executions table")
        yield ("Clear filters", app.clear_filters, "show every execution")
        for status in STATUSES:
            yield (f"Filter status: {status}", partial(app.filter_status, status), "executions table")
        rows = sorted(app.table.known.values(), key=lambda r: r.created_at or r.started_at or 0, reverse=True)
        for row in rows[:MAX_EXECUTIONS]:
            yield (
                f"Open {row.execution_id} {row.workflow_id}@{row.version} {row.status}",
                partial(app.open_execution, row.execution_id),
                "execution detail",
            )

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            if not text.startswith(("Open ", "Filter workflow", "Structure of")):
                yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
