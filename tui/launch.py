"""The launch form: fields built from a workflow's input JSON Schema, checked before submit.

    string            Input (format/pattern checked by the schema on submit)
    integer / number  Input restricted to numbers
    boolean           Checkbox
    enum              Select
    object / array    Input holding JSON
Required fields are marked `*`, defaults prefilled, descriptions shown under the label;
empty optional fields are left out of input_data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Select, Static
from textual.widgets._input import InputType

from flowdeck.tui.client import Client, InputProblem, WorkflowVersion

__all__ = ["LaunchRequest", "LaunchScreen", "collect_value"]


@dataclass(frozen=True)
class LaunchRequest:
    workflow_id: str
    version: int
    mode: str  # sync | async
    input_data: dict[str, Any]


def _field_id(name: str) -> str:
    return "field-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


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
            return True, None, "must be a whole number"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return True, None, "must be a number"
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
    ]

    def __init__(
        self,
        client: Client,
        versions: list[WorkflowVersion],
        chosen: WorkflowVersion,
        *,
        mode: str | None = None,
        input_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.versions = versions
        self.chosen = chosen
        self.mode = mode or ("sync" if chosen.status == "draft" else "async")
        self.prefill = input_data

    # ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="launch-dialog"):
            yield Static(f"Run [b]{self.chosen.workflow_id}[/b]", id="launch-title")
            with Horizontal(id="launch-options"):
                yield Select(
                    [(f"v{v.version} {v.status}", v.version) for v in self.versions],
                    value=self.chosen.version,
                    allow_blank=False,
                    id="launch-version",
                    compact=True,
                )
                with RadioSet(id="launch-mode", compact=True):
                    yield RadioButton("sync", value=self.mode == "sync", id="mode-sync")
                    yield RadioButton("async", value=self.mode == "async", id="mode-async")
            with VerticalScroll(id="launch-fields"):
                yield from self._fields(self.chosen)
            yield Static("", id="launch-errors")
            with Horizontal(id="launch-buttons"):
                yield Button("Run (ctrl+s)", variant="primary", id="launch-run", compact=True)
                yield Button("Cancel (esc)", id="launch-cancel", compact=True)

    def _fields(self, version: WorkflowVersion) -> ComposeResult:
        schema = version.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        if not properties:
            yield Label("This workflow takes no input fields.", classes="field-help")
            if schema.get("additionalProperties", True) is not False:
                yield Label("input_data (JSON object)", classes="field-label")
                yield Input(
                    value=json.dumps(self.prefill) if self.prefill else "",
                    placeholder="{}",
                    id="field-__raw__",
                    compact=True,
                )
            return
        for name, field in properties.items():
            field = field if isinstance(field, dict) else {}
            kind = field.get("type")
            title = f"{name}{' *' if name in required else ''}"
            hint = kind if isinstance(kind, str) else "json"
            yield Label(f"[b]{title}[/b] [dim]{hint}[/dim]", classes="field-label")
            if field.get("description"):
                yield Label(str(field["description"]), classes="field-help")
            default = (self.prefill or {}).get(name, field.get("default"))
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
                input_type: InputType = "integer" if kind == "integer" else "number" if kind == "number" else "text"
                text = (
                    ""
                    if default is None
                    else (json.dumps(default) if isinstance(default, (dict, list)) else str(default))
                )
                placeholder = "JSON" if kind in ("object", "array") else (field.get("format") or str(kind or "value"))
                yield Input(value=text, type=input_type, placeholder=placeholder, id=widget_id, compact=True)

    # ---------------------------------------------------------------------------------
    def _current_version(self) -> WorkflowVersion:
        value = self.query_one("#launch-version", Select).value
        return next((v for v in self.versions if v.version == value), self.chosen)

    @on(Select.Changed, "#launch-version")
    async def _version_changed(self, event: Select.Changed) -> None:
        version = self._current_version()
        if version == self.chosen:
            return
        self.chosen = version
        fields = self.query_one("#launch-fields", VerticalScroll)
        await fields.remove_children()
        await fields.mount_all(list(self._fields(version)))

    def collect(self) -> tuple[dict[str, Any], list[InputProblem]]:
        version = self._current_version()
        schema = version.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        data: dict[str, Any] = {}
        problems: list[InputProblem] = []
        if not properties:
            raw = self.query("#field-__raw__")
            text = raw.first(Input).value.strip() if raw else ""
            if text:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    return {}, [InputProblem("input_data", f"is not valid JSON: {error.msg}")]
                if not isinstance(value, dict):
                    return {}, [InputProblem("input_data", "must be a JSON object")]
                data = value
        for name, field in properties.items():
            widget = self.query_one(f"#{_field_id(name)}")
            present, value, problem = collect_value(field if isinstance(field, dict) else {}, widget)
            if problem:
                problems.append(InputProblem(name, problem))
            elif present:
                data[name] = value
        if not problems:
            problems = self.client.check_input(version.workflow_id, version.version, data)
        return data, problems

    def action_submit(self) -> None:
        data, problems = self.collect()
        errors = self.query_one("#launch-errors", Static)
        for widget in self.query(".-invalid-field"):
            widget.remove_class("-invalid-field")
        if problems:
            errors.update("\n".join(f"[b red]✗[/] {p.field}: {p.message}" for p in problems))
            for problem in problems:
                found = self.query(f"#{_field_id(problem.field.split('.')[0])}")
                if found:
                    found.first().add_class("-invalid-field")
            return
        mode = "sync" if self.query_one("#mode-sync", RadioButton).value else "async"
        version = self._current_version()
        if mode == "async" and version.status == "draft":
            errors.update("[b red]✗[/] drafts run in sync mode only; choose sync or a published version")
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
