"""The expression playground of the detail screen: a `{{ }}` template or a bare JSONata
expression, evaluated against this execution's context with the engine's own evaluator
(`flowdeck eval`'s), its typed value or the engine's error shown; never a crash."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from flowdeck.tui.client import ExecutionDetail

__all__ = ["Playground", "context_of"]

MAX_EXPRESSION_CHARS = 10_000  # the field refuses more (the evaluator bounds time and size too)


def context_of(detail: ExecutionDetail) -> dict[str, Any]:
    """ctx as the execution had it: input, trigger, execution, each recorded step output."""
    row = detail.row
    ctx: dict[str, Any] = {
        "input": detail.input_data or {},
        "trigger": detail.trigger or {"type": "manual"},
        "execution": {"id": row.execution_id, "workflow_id": row.workflow_id, "version": row.version, "mode": row.mode},
    }
    for step in detail.steps:
        if step.has_output and "." not in step.key:  # a called workflow's steps are not in this context
            ctx[step.key] = step.output
    return ctx


class Evaluated(Message):
    def __init__(self, expression: str, result: Text | Syntax) -> None:
        super().__init__()
        self.expression = expression
        self.result = result


class Playground(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ctx: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="{{ input.name }}  or  $count(fetch_company.items)  (enter: evaluate)",
            id="expr",
            max_length=MAX_EXPRESSION_CHARS,
            compact=True,
        )
        with VerticalScroll(id="expr-scroll"):
            yield Static(Text("the value shows here, with its JSON type", style="dim"), id="expr-result")
        yield Static("", id="expr-context")

    def set_context(self, ctx: dict[str, Any]) -> None:
        self.ctx = ctx
        names = ", ".join(ctx)
        self.query_one("#expr-context", Static).update(Text(f"context: {names}", style="dim"))

    @on(Input.Changed, "#expr")
    @on(Input.Submitted, "#expr")
    def _changed(self, event: Input.Changed | Input.Submitted) -> None:
        event.stop()
        self._evaluate(event.value, dict(self.ctx))

    @work(thread=True, exclusive=True, group="playground")
    def _evaluate(self, expression: str, ctx: dict[str, Any]) -> None:
        """In a thread: the evaluator's time bound (1 s) never freezes the screen."""
        self.post_message(Evaluated(expression, evaluate_text(expression, ctx)))

    @on(Evaluated)
    def _show(self, message: Evaluated) -> None:
        if message.expression == self.query_one("#expr", Input).value:
            self.query_one("#expr-result", Static).update(message.result)


def evaluate_text(expression: str, ctx: dict[str, Any]) -> Text | Syntax:
    from flowdeck.authoring.evaluate import evaluate, show
    from flowdeck.errors import FlowdeckError

    if not expression.strip():
        return Text("the value shows here, with its JSON type", style="dim")
    try:
        value = evaluate(expression, ctx)
    except FlowdeckError as error:
        return Text(f"✗ {error.message}", style="bold red")
    except Exception as error:  # the evaluator's own bug must not end the dashboard
        return Text(f"✗ {type(error).__name__}: {error}", style="bold red")
    return Syntax(show(value), "json", theme="ansi_dark", word_wrap=True)
