"""The workflow itself: the structure of a version (steps in order, condition branches,
nested steps, sub-workflow calls, waits and their durations; `flowdeck graph`'s tree) beside
its YAML, and a diff between two versions of the workflow (structure and YAML)."""

from __future__ import annotations

import difflib

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Select, Static, TabbedContent, TabPane

from flowdeck.tui.client import Client, WorkflowFile, WorkflowVersion

__all__ = ["WorkflowScreen", "version_diff"]


def _diff(before: str, after: str, before_name: str, after_name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=before_name, tofile=after_name, lineterm="", n=2
    )
    return "\n".join(lines)


def version_diff(client: Client, old: WorkflowVersion, new: WorkflowVersion, files: list[WorkflowFile]) -> Group:
    """What changed from `old` to `new`: the structure first (what runs), then the YAML."""
    by_path = {f.path: f.source_text for f in files}

    def steps_of(version: WorkflowVersion) -> str:  # without the title line (id@version, path)
        return "\n".join(client.structure(version.workflow_id, version.version).splitlines()[1:])

    structure = _diff(
        steps_of(old),
        steps_of(new),
        f"v{old.version} structure",
        f"v{new.version} structure",
    )
    source = _diff(by_path.get(old.path, ""), by_path.get(new.path, ""), old.path, new.path)
    parts: list[Text | Syntax] = [Text(f"v{old.version} → v{new.version}", style="bold")]
    for title, text in (("structure", structure), ("yaml", source)):
        parts.append(Text(f"\n{title}", style="bold underline"))
        parts.append(
            Syntax(text, "diff", theme="ansi_dark", word_wrap=True) if text else Text("no difference", style="dim")
        )
    return Group(*parts)


class WorkflowScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "tab('structure')", "Structure"),
        Binding("d", "tab('diff')", "Diff"),
        Binding("l", "launch", "Launch"),
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
    ]

    def __init__(self, client: Client, workflow_id: str, version: int | None = None) -> None:
        super().__init__()
        self.client = client
        self.workflow_id = workflow_id
        self.versions = [v for v in client.workflows() if v.workflow_id == workflow_id]
        numbers = [v.version for v in self.versions]
        self.version = version if version in numbers else (numbers[-1] if numbers else None)

    def compose(self) -> ComposeResult:
        options = [(f"v{v.version} {v.status}", v.version) for v in self.versions]
        previous = [n for _, n in options if self.version is not None and n < self.version]
        yield Static(Text.assemble(("workflow ", "dim"), (self.workflow_id, "bold")), id="workflow-title")
        with TabbedContent(id="workflow-tabs", initial="structure"):
            with TabPane("structure", id="structure"):
                if options:
                    yield Select(options, value=self.version, allow_blank=False, id="structure-version", compact=True)
                with Horizontal(id="structure-body"):
                    with VerticalScroll(id="structure-scroll"):
                        yield Static("", id="structure-tree")
                    with VerticalScroll(id="structure-yaml-scroll"):
                        yield Static("", id="structure-yaml")
            with TabPane("diff", id="diff"):
                with Horizontal(id="diff-choice"):
                    if options:
                        yield Select(
                            options,
                            value=previous[-1] if previous else options[0][1],
                            allow_blank=False,
                            id="diff-from",
                            compact=True,
                        )
                        yield Static(" → ", classes="arrow")
                        yield Select(options, value=self.version, allow_blank=False, id="diff-to", compact=True)
                with VerticalScroll(id="diff-scroll"):
                    yield Static("", id="diff-text")
        yield Footer()

    def on_mount(self) -> None:
        if not self.versions:
            self.query_one("#structure-tree", Static).update(
                Text(f"no runnable version of {self.workflow_id} (see its problems on the main screen)", "yellow")
            )
            return
        self._show_structure()
        self._show_diff()

    def _version(self, number: object) -> WorkflowVersion:
        return next((v for v in self.versions if v.version == number), self.versions[-1])

    def _show_structure(self) -> None:
        version = self._version(self.query_one("#structure-version", Select).value)
        tree = self.client.structure(version.workflow_id, version.version)
        self.query_one("#structure-tree", Static).update(Text(tree))
        source = next((f.source_text for f in self.client.files() if f.path == version.path), "")
        self.query_one("#structure-yaml", Static).update(
            Syntax(source.rstrip("\n"), "yaml", theme="ansi_dark", line_numbers=True, word_wrap=False)
        )

    def _show_diff(self) -> None:
        old = self._version(self.query_one("#diff-from", Select).value)
        new = self._version(self.query_one("#diff-to", Select).value)
        text = (
            Text("choose two different versions above", style="dim")
            if old == new
            else version_diff(self.client, old, new, self.client.files())
        )
        self.query_one("#diff-text", Static).update(text)

    @on(Select.Changed, "#structure-version")
    def _structure_changed(self) -> None:
        self._show_structure()

    @on(Select.Changed, "#diff-from, #diff-to")
    def _diff_changed(self) -> None:
        self._show_diff()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_launch(self) -> None:
        if self.versions:
            chosen = self._version(self.query_one("#structure-version", Select).value)
            self.app.launch(chosen)  # type: ignore[attr-defined]
