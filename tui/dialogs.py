"""Small modal questions: confirm a destructive action, keep or stop services on quit."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

__all__ = ["ConfirmScreen", "QuitScreen"]


class ConfirmScreen(ModalScreen[bool]):
    """`y` / enter confirms, `n` / esc does not; nothing happens until one is pressed."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Label(self.question, id="confirm-question")
            if self.detail:
                yield Label(self.detail, id="confirm-detail")
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="warning", compact=True)
                yield Button("No (n/esc)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # enter on a reflex does not destroy anything

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class QuitScreen(ModalScreen[str | None]):
    """Asked on quit when this session started background services."""

    BINDINGS = [
        Binding("k", "choose('keep')", "Keep running"),
        Binding("s", "choose('stop')", "Stop them"),
        Binding("escape", "choose(None)", "Back"),
    ]

    def __init__(self, services: list[str]) -> None:
        super().__init__()
        self.services = services

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Label(f"flowdeck started: {', '.join(self.services)}.")
            yield Label("Keep them running in the background?")
            with Horizontal():
                yield Button("Keep (k)", id="keep", compact=True)
                yield Button("Stop (s)", id="stop", variant="warning", compact=True)
                yield Button("Back (esc)", id="back", compact=True)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "back" else event.button.id)
