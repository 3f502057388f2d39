"""The launch form: fields built from a workflow's input JSON Schema, checked before submit.

    string            Input (format/pattern checked by the schema)
    integer / number  Input, checked as you type (letters are shown as a problem, not swallowed)
    boolean           Checkbox
    enum              Select
    object / array    Input holding JSON
Required fields are marked `*`; each field says its type and the schema's hints (min/max,
length, format, enum, default) and shows its own problems under it; every problem is shown
at once. The first field has the focus. Sync by default unless the workflow has a Wait (as
`flowdeck run`); drafts run in sync mode only. Fields are prefilled with the last input this
workflow ran with (tui/memory.py); ctrl+d puts the schema's defaults back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from flowdeck.tui.client import Client, InputProblem, WorkflowVersion

__all__ = ["LaunchRequest", "LaunchScreen", "collect_value", "default_mode", "hints"]

RAW = "__raw__"  # the one JSON field of a workflow without declared properties
MAX_FIELD = 100_000  # characters in one field (the engine bounds the whole input too)


@dataclass(frozen=True)
class LaunchRequest:
    workflow_id: str
    version: int
    mode: str  # sync | async
    input_data: dict[str, Any]


def default_mode(version: WorkflowVersion) -> str:
    """As `flowdeck run`: sync, unless the workflow waits (then async); drafts only sync."""
    return "async" if version.has_wait and version.status != "draft" else "sync"


def _field_id(name: str) -> str:
    return "field-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _error_id(name: str) -> str:
    return "error-" + _field_id(name).removeprefix("field-")


def hints(field: dict[str, Any]) -> str:
    """The schema's hints in a few words: `integer · ≥ 0 · ≤ 500 · default 1`."""
    kind = field.get("type")
    parts = [kind if isinstance(kind, str) else "json"]
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in field:
            parts.append(f"{sign} {field[key]}")
    for key, word in (("minLength", "min length"), ("maxLength", "max length"), ("maxItems", "max items")):
        if key in field:
            parts.append(f"{word} {field[key]}")
    if "format" in field:
        parts.append(f"format {field['format']}")
    if "pattern" in field:
        parts.append(f"pattern {field['pattern']}")
    if "enum" in field:
        parts.append("one of " + ", ".join(json.dumps(v) if not isinstance(v, str) else v for v in field["enum"]))
    if "default" in field:
        parts.append(f"default {json.dumps(field['default'])}")
    return " · ".join(parts)


def friendly(message: str) -> str:
    """The schema validator's words, for people: `'x' is not a 'email'` -> not a valid email."""
    match = re.fullmatch(r"(.*) is not a '([\w-]+)'", message)
    return f"{match.group(1)} is not a valid {match.group(2)}" if match else message


def collect_value(schema: dict[str, Any], widget: Widget) -> tuple[bool, Any, str | None]:
    """(present, value, problem) of one field."""
    kind = schema.get("type")
    if isinstance(widget, Checkbox):
        return True, widget.value, None
    if isinstance(widget, Select):
        if widget.value is Select.NULL:
            return False, None, None
        return True, widget.value, None
    assert isinstance(widget, Input)
    text = widget.value.strip()
    if text == "":
        return False, None, None
    if kind == "integer":
        try:
            return True, int(text), None
        except ValueError:
            return True, None, f"{text!r} is not a whole number"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return True, None, f"{text!r} is not a number"
        return True, int(number) if number.is_integer() and "." not in text else number, None
    if kind in ("object", "array") or kind is None and text[:1] in "[{":
        try:
            return True, json.loads(text), None
        except json.JSONDecodeError as error:
            return True, None, f"is not valid JSON: {error.msg}"
    return True, widget.value, None


class LaunchScreen(ModalScreen[LaunchRequest | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("ctrl+s", "submit", "Run", priority=True),
        Binding("ctrl+d", "defaults", "Schema defaults"),
        Binding("f1", "app.help", "Help"),
    ]

    def __init__(
        self,
        client: Client,
        versions: list[WorkflowVersion],
        chosen: WorkflowVersion,
        *,
        mode: str | None = None,
        input_data: dict[str, Any] | None = None,
        remembered: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.versions = versions
        self.chosen = chosen
        self.mode = mode or default_mode(chosen)
        self.prefill = input_data if input_data is not None else remembered
        self.prefill_note = (
            "prefilled with the execution's input"
            if input_data is not None
            else ("prefilled with your last input (ctrl+d: the schema's defaults)" if remembered else "")
        )

    # ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="launch-dialog"):
            yield Static(f"Run [b]{escape(self.chosen.workflow_id)}[/b]", id="launch-title")
            with Horizontal(id="launch-options"):
                yield Select(
                    [(f"v{v.version} {v.status}", v.version) for v in self.versions],
                    value=self.chosen.version,
                    allow_blank=False,
                    id="launch-version",
                    compact=True,
                )
                yield Select(
                    [("sync: wait for the output", "sync"), ("async: return the id at once", "async")],
                    value=self.mode,
                    allow_blank=False,
                    id="launch-mode",
                    compact=True,
                )
            yield Static(self.prefill_note, id="launch-note", classes="field-help")
            with VerticalScroll(id="launch-fields"):
                yield from self._fields(self.chosen, self.prefill)
            yield Static("", id="launch-errors")
            with Horizontal(id="launch-buttons"):
                yield Button("Run (ctrl+s)", variant="primary", id="launch-run", compact=True)
                yield Button("Cancel (esc)", id="launch-cancel", compact=True)

    def on_mount(self) -> None:
        self._focus_first()

    def _focus_first(self) -> None:
        fields = [w for w in self.query("#launch-fields Input, #launch-fields Select, #launch-fields Checkbox")]
        (fields[0] if fields else self.query_one("#launch-run", Button)).focus()

    def _fields(self, version: WorkflowVersion, prefill: dict[str, Any] | None) -> ComposeResult:
        schema = version.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        if not properties:
            yield Label("This workflow takes no input fields.", classes="field-help")
            if schema.get("additionalProperties", True) is not False:
                yield Label("input_data (JSON object)", classes="field-label")
                yield Input(
                    value=json.dumps(prefill) if prefill else "",
                    placeholder="{}",
                    id=_field_id(RAW),
                    max_length=MAX_FIELD,
                    compact=True,
                )
                yield Static("", id=_error_id(RAW), classes="field-error")
            return
        for name, field in properties.items():
            field = field if isinstance(field, dict) else {}
            kind = field.get("type")
            title = f"{name}{' *' if name in required else ''}"
            yield Label(f"[b]{escape(title)}[/b] [dim]{escape(hints(field))}[/dim]", classes="field-label")
            if field.get("description"):
                yield Label(escape(str(field["description"])), classes="field-help")
            default = (prefill or {}).get(name, field.get("default"))
            widget_id = _field_id(name)
            if "enum" in field:
                yield Select(
                    [(json.dumps(v) if not isinstance(v, str) else v, v) for v in field["enum"]],
                    value=default if default in field["enum"] else Select.NULL,
                    allow_blank=name not in required or default is None,
                    id=widget_id,
                    compact=True,
                )
            elif kind == "boolean":
                yield Checkbox(name, value=bool(default), id=widget_id, compact=True)
            else:
                text = (
                    ""
                    if default is None
                    else (json.dumps(default) if isinstance(default, (dict, list)) else str(default))
                )
                placeholder = "JSON" if kind in ("object", "array") else (field.get("format") or str(kind or "value"))
                declared = field.get("maxLength")
                limit = declared if isinstance(declared, int) and declared > 0 else MAX_FIELD
                yield Input(
                    value=text, placeholder=placeholder, id=widget_id, max_length=min(limit, MAX_FIELD), compact=True
                )
            yield Static("", id=_error_id(name), classes="field-error")

    # ---------------------------------------------------------------------------------
    def _current_version(self) -> WorkflowVersion:
        value = self.query_one("#launch-version", Select).value
        return next((v for v in self.versions if v.version == value), self.chosen)

    async def _rebuild_fields(self, prefill: dict[str, Any] | None) -> None:
        fields = self.query_one("#launch-fields", VerticalScroll)
        await fields.remove_children()
        await fields.mount_all(list(self._fields(self.chosen, prefill)))
        self._focus_first()

    @on(Select.Changed, "#launch-version")
    async def _version_changed(self, event: Select.Changed) -> None:
        version = self._current_version()
        if version == self.chosen:
            return
        self.chosen = version
        self.query_one("#launch-mode", Select).value = default_mode(version)
        await self._rebuild_fields(self.prefill)

    async def action_defaults(self) -> None:
        self.query_one("#launch-note", Static).update("the schema's defaults")
        await self._rebuild_fields(None)

    def collect(self) -> tuple[dict[str, Any], list[InputProblem]]:
        """The input and every problem with it at once: the fields' own (a number that is not
        one, JSON that does not parse) and the schema's on the rest."""
        version = self._current_version()
        schema = version.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        data: dict[str, Any] = {}
        problems: list[InputProblem] = []
        if not properties:
            raw = self.query(f"#{_field_id(RAW)}")
            text = raw.first(Input).value.strip() if raw else ""
            if text:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    return {}, [InputProblem(RAW, f"is not valid JSON: {error.msg}")]
                if not isinstance(value, dict):
                    return {}, [InputProblem(RAW, "must be a JSON object")]
                data = value
        for name, field in properties.items():
            widget = self.query_one(f"#{_field_id(name)}")
            present, value, problem = collect_value(field if isinstance(field, dict) else {}, widget)
            if problem:
                problems.append(InputProblem(name, problem))
            elif present:
                data[name] = value
        broken = {p.field for p in problems}
        for found in self.client.check_input(version.workflow_id, version.version, data):
            if found.field.split(".")[0] not in broken:
                problems.append(InputProblem(found.field, friendly(found.message)))
        return data, problems

    def show_problems(self, problems: list[InputProblem]) -> None:
        for label in self.query(".field-error").results(Static):
            label.update("")
        for widget in self.query(".-invalid-field"):
            widget.remove_class("-invalid-field")
        placed: list[InputProblem] = []
        for problem in problems:
            name = problem.field.split(".")[0]
            found = self.query(f"#{_error_id(name)}")
            if found:
                found.first(Static).update(f"[b red]✗[/] {escape(problem.message)}")
                self.query_one(f"#{_field_id(name)}").add_class("-invalid-field")
                placed.append(problem)
        summary = self.query_one("#launch-errors", Static)
        if not problems:
            summary.update("")
            return
        elsewhere = [p for p in problems if p not in placed]
        lines = [f"[b red]{len(problems)} problem(s)[/]: fix the marked fields"] + [
            f"[b red]✗[/] {escape(p.field)}: {escape(p.message)}" for p in elsewhere
        ]
        summary.update("\n".join(lines))

    @on(Input.Changed, "#launch-fields Input")
    def _typed(self, event: Input.Changed) -> None:
        """A number field says at once when what was typed is not a number."""
        version = self._current_version()
        properties: dict[str, Any] = (version.input_schema or {}).get("properties") or {}
        for name, field in properties.items():
            numeric = isinstance(field, dict) and field.get("type") in ("integer", "number")
            if event.input.id == _field_id(name) and numeric:
                _, _, problem = collect_value(field, event.input)
                label = self.query_one(f"#{_error_id(name)}", Static)
                label.update(f"[b red]✗[/] {escape(problem)}" if problem else "")
                event.input.set_class(problem is not None, "-invalid-field")

    def action_submit(self) -> None:
        data, problems = self.collect()
        self.show_problems(problems)
        if problems:
            return
        mode = str(self.query_one("#launch-mode", Select).value)
        version = self._current_version()
        if mode == "async" and version.status == "draft":
            self.query_one("#launch-errors", Static).update(
                "[b red]✗[/] drafts run in sync mode only; choose sync or a published version"
            )
            return
        self.dismiss(LaunchRequest(version.workflow_id, version.version, mode, data))

    @on(Button.Pressed, "#launch-run")
    def _run_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#launch-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _input_submitted(self) -> None:
        self.action_submit()
