"""The help overlay (`?` or F1): every key the current screen answers, grouped, read from the
live bindings (so it never drifts from what the keys do). Esc, `?` or F1 closes it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, Tree

__all__ = ["HelpScreen", "VIM_ACTIONS", "key_groups", "own_bindings"]

VIM_ACTIONS = {"cursor_down", "cursor_up", "first", "last", "scroll_up", "scroll_down", "scroll_home", "follow"}

# the keys Textual's own widgets answer in lists and fields, named for people
WIDGET_KEYS: list[tuple[type[Widget], str, list[tuple[str, str]]]] = [
    (DataTable, "in the list", [("↑ ↓ pgup pgdn home end", "move")]),
    (Tree, "in the tree", [("↑ ↓", "move"), ("space", "expand / collapse"), ("enter", "select")]),
    (Input, "in the field", [("enter", "apply"), ("tab", "next field")]),
]


def _key_name(key: str, binding: Binding) -> str:
    names = {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc", "enter": "enter"}
    return names.get(key, key)


def own_bindings(node: object) -> list[Binding]:
    """The bindings flowdeck's classes declare (not the dozens Textual's widgets inherit)."""
    found: list[Binding] = []
    for cls in type(node).__mro__:
        if cls.__module__.startswith("flowdeck."):
            found.extend(b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding))
    return found


def key_groups(screen: Screen[object]) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group, [(keys, what it does)])] for `screen`: the focused widget's keys, the
    screen's, then the app's; a key answered nearer the focus wins, as it does when pressed."""
    groups: dict[str, list[tuple[str, str]]] = {}
    taken: set[str] = set()
    app = screen.app
    chain = list(screen.focused.ancestors_with_self) if screen.focused is not None else [screen]
    if screen not in chain:
        chain.append(screen)
    for node in [*chain, app]:
        for binding in own_bindings(node):
            keys = [k.strip() for k in binding.key.split(",") if k.strip() not in taken]
            if not binding.description or not keys:
                continue
            taken.update(keys)
            default = "app" if node is app else ("in the list" if binding.action in VIM_ACTIONS else "this screen")
            title = getattr(node, "HELP_GROUPS", {}).get(binding.action, default)
            shown = " / ".join(_key_name(k, binding) for k in keys)
            groups.setdefault(title, []).append((shown, binding.description))
    for kind, title, described in WIDGET_KEYS:
        if any(isinstance(n, kind) for n in chain):
            groups.setdefault(title, []).extend(described)
    groups.setdefault("app", []).append(("ctrl+p", "command palette: every action, by name"))
    return list(groups.items())


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
        Binding("f1", "close", "Close", show=False),
    ]

    def __init__(self, title: str, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.title_text = title
        self.groups = groups

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for title, keys in self.groups:
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in keys:
                table.add_row(key, description)
        with VerticalScroll(id="help-dialog") as scroll:
            scroll.border_title = f"keys: {self.title_text}"
            scroll.border_subtitle = "esc / ? closes"
            yield Static(table, id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
