"""Lists that answer vim's keys as well as the arrows: j/k move, g/G jump to the first/last row."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Tree

__all__ = ["VimTable", "VimTree", "VIM_KEYS"]

VIM_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g", "first", "First row", show=False),
    Binding("G", "last", "Last row", show=False),
]


class VimTable(DataTable[object]):
    BINDINGS = VIM_KEYS

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class VimTree(Tree[object]):
    BINDINGS = VIM_KEYS

    def action_first(self) -> None:
        self.move_cursor(self.root.children[0] if self.root.children else None)

    def action_last(self) -> None:
        self.cursor_line = self.last_line
