"""The workflows pane: every workflow id with its versions and statuses, broken files marked
inline, and the selected file's YAML with its problems highlighted."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Static, Tree

from flowdeck.tui.client import WorkflowFile, WorkflowVersion
from flowdeck.tui.vim import VimTree

__all__ = ["WorkflowsPane", "Selection"]

STATUS_STYLE = {"live": "bold green", "published": "cyan", "draft": "dim"}


@dataclass(frozen=True)
class Selection:
    """What a tree node stands for: a runnable version and/or a file."""

    workflow_id: str | None
    version: WorkflowVersion | None
    file: WorkflowFile | None


class WorkflowsPane(Horizontal):
    class Selected(Message):
        def __init__(self, selection: Selection) -> None:
            super().__init__()
            self.selection = selection

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.selection: Selection | None = None

    def compose(self) -> ComposeResult:
        tree = VimTree("workflows", id="workflow-tree")
        tree.show_root = False
        tree.guide_depth = 2
        yield tree
        with VerticalScroll(id="source-scroll"):
            yield Static("", id="source")

    def show(self, versions: list[WorkflowVersion], files: list[WorkflowFile]) -> None:
        tree: Tree[object] = self.query_one("#workflow-tree", Tree)
        tree.clear()
        by_path = {f.path: f for f in files}
        grouped: dict[str, list[WorkflowVersion]] = {}
        for version in versions:
            grouped.setdefault(version.workflow_id, []).append(version)
        broken = [f for f in files if f.has_errors]
        for f in broken:
            grouped.setdefault(f.workflow_id or f.path, [])
        first = None
        for workflow_id in sorted(grouped):
            label = Text(workflow_id, style="bold")
            problems = [f for f in broken if (f.workflow_id or f.path) == workflow_id]
            if problems:
                label.append(" ✗", style="bold red")
            latest = grouped[workflow_id][-1] if grouped[workflow_id] else None
            group_file = by_path.get(latest.path) if latest is not None else (problems[0] if problems else None)
            node = tree.root.add(label, data=Selection(workflow_id, latest, group_file), expand=True)
            for version in grouped[workflow_id]:
                item = Text(f"v{version.version} ")
                item.append(version.status, style=STATUS_STYLE.get(version.status, ""))
                leaf = node.add_leaf(item, data=Selection(workflow_id, version, by_path.get(version.path)))
                first = first or leaf
            for f in problems:
                item = Text(f"v{f.version if f.version is not None else '?'} ")
                item.append(f"{len([p for p in f.problems if ': error: ' in p])} error(s)", style="bold red")
                leaf = node.add_leaf(item, data=Selection(workflow_id, None, f))
                first = first or leaf
        if first is not None and self.selection is None and isinstance(first.data, Selection):
            self._select(first.data)
            self.call_after_refresh(tree.move_cursor, first)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[object]) -> None:
        event.stop()
        if isinstance(event.node.data, Selection):
            self._select(event.node.data)

    def _select(self, selection: Selection | None) -> None:
        if selection is None:
            return
        self.selection = selection
        self.query_one("#source", Static).update(self._render_source(selection))
        self.post_message(self.Selected(selection))

    @staticmethod
    def _render_source(selection: Selection) -> Group | Text:
        file = selection.file
        version = selection.version
        if file is None:
            if version is None:
                return Text("")
            return Text(f"{version.name}\n{version.description or ''}\n{version.path}")
        header = Text(file.path, style="bold")
        if version is not None and version.description:
            header.append(f"\n{version.description}", style="italic")
        parts: list[object] = [header]
        if file.problems:
            problems = Text()
            for problem in file.problems:
                style = "bold red" if ": error: " in problem else "yellow"
                problems.append(f"{problem}\n", style=style)
            parts.append(problems)
        parts.append(
            Syntax(
                file.source_text.rstrip("\n"),
                "yaml",
                theme="ansi_dark",
                line_numbers=True,
                highlight_lines=set(file.problem_lines),
                word_wrap=False,
            )
        )
        return Group(*parts)  # type: ignore[arg-type]
