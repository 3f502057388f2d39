"""The flowdeck dashboard: workflows on top, live executions below, no key press needed.

`build_app()` makes the App without running it (snapshot tests and `textual-serve` use it);
`run_dashboard()` is what `flowdeck` / `flowdeck tui` call: it settles the environment,
makes sure Prefect (and a worker) run, runs the App and reports what keeps running.

Fetching happens in async workers that post messages; the handlers own every widget
change. The executions refresh reschedules itself after each answer (no overlapping
polls) and pauses while another screen is on top.
"""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from flowdeck.tui.client import STATUSES, Client, ClientError, ExecutionDetail, ExecutionRow, WorkflowVersion
from flowdeck.tui.commands import FlowdeckCommands
from flowdeck.tui.detail import DetailScreen
from flowdeck.tui.executions import ExecutionFilter, ExecutionsTable
from flowdeck.tui.launch import LaunchRequest, LaunchScreen
from flowdeck.tui.workflows import Selection, WorkflowsPane

__all__ = ["FlowdeckApp", "build_app"]

FULL_REFRESH_EVERY = 10.0  # seconds between full reloads (deleted rows, older pages)


class ExecutionsFetched(Message):
    def __init__(self, rows: list[ExecutionRow], complete: bool, seconds: float) -> None:
        super().__init__()
        self.rows = rows
        self.complete = complete
        self.seconds = seconds


class Launched(Message):
    def __init__(self, request: LaunchRequest, body: dict[str, Any]) -> None:
        super().__init__()
        self.request = request
        self.body = body


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


class FlowdeckApp(App[str | None]):
    """The dashboard. The App's return value: "stop" / "keep" for the services it started."""

    TITLE = "flowdeck"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {FlowdeckCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("l", "launch", "Launch"),
        Binding("enter", "open", "Detail", show=False),
        Binding("r", "rerun", "Re-run"),
        Binding("c", "cancel", "Cancel"),
        Binding("s", "cycle_status", "Status filter"),
        Binding("w", "toggle_workflow", "Workflow filter"),
        Binding("slash", "search", "Search id"),
        Binding("e", "next_problem", "Errors"),
        Binding("y", "copy_id", "Copy id", show=False),
        Binding("o", "open_prefect", "Prefect UI", show=False),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(
        self,
        client: Client,
        *,
        show_clocks: bool = True,
        poll_interval: float = 0.5,
        max_rows: int = 5000,
        started_services: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.show_clocks = show_clocks
        self.poll_interval = poll_interval
        self.max_rows = max_rows
        self.started_services = started_services or []
        self.table = ExecutionsTable(show_clocks=show_clocks, id="executions")
        self.status_line = Static("", id="status-line")
        self.last_fetch_seconds: float | None = None
        self.fetches = 0
        self._last_full = 0.0
        self._poll_scheduled = False
        self._poll_timer: Any = None
        self._polling = False
        self._nudged = False

    # layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield self.status_line
        yield WorkflowsPane(id="workflows")
        with Horizontal(id="filters"):
            yield Select([(s, s) for s in STATUSES], prompt="any status", id="filter-status", compact=True)
            yield Select([], prompt="any workflow", id="filter-workflow", compact=True)
            yield Input(placeholder="/ search id", id="filter-search", compact=True)
        yield self.table
        yield Footer()

    def on_mount(self) -> None:
        if not self.show_clocks:
            for widget in self.screen_stack[0].query(Input):
                widget.cursor_blink = False
        self.table.border_title = "executions"
        self._refresh_status_line()
        self._main_query("#workflows").border_title = "workflows"
        self._show_workflows()
        self.table.focus()
        self._poll()
        self._follow_changes()
        if self.show_clocks:
            self.set_interval(1.0, self._tick)

    def _main_query(self, selector: Any, expect_type: Any = None) -> Any:
        """Widgets of the main screen, whichever screen is on top."""
        return self.screen_stack[0].query_one(selector, expect_type)

    def _show_workflows(self) -> None:
        versions = self.client.workflows()
        self._main_query(WorkflowsPane).show(versions, self.client.files())
        ids = sorted({v.workflow_id for v in versions})
        select = self._main_query("#filter-workflow", Select)
        select.set_options([(i, i) for i in ids])

    def _status_line(self) -> str:
        shown = getattr(self, "table", None)
        counts = (
            f"{shown.row_count} shown / {len(shown.known)} known"
            if shown is not None and shown.is_mounted
            else "loading…"
        )
        filt = shown.filter.describe() if shown is not None else "all"
        return f"[b]{counts}[/b] · filter: {filt} · {self.client.description}"

    def _refresh_status_line(self) -> None:
        if self.status_line.is_mounted:
            self.status_line.update(self._status_line())

    def _tick(self) -> None:
        if len(self.screen_stack) == 1:
            self.table.tick()

    # live executions -------------------------------------------------------------------
    @work(exclusive=True, group="changes", exit_on_error=False)
    async def _follow_changes(self) -> None:
        """Prefect's events say when something changed (CLI, API, Prefect UI, schedules):
        refresh at once instead of at the next tick, so changes show within a second."""
        async for _ in self.client.changes():
            self.nudge()

    def nudge(self) -> None:
        """Refresh now: start a poll, or run one right after the poll in flight."""
        if self._polling:
            self._nudged = True
            return
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self._poll()

    @work(exclusive=True, group="executions", exit_on_error=False)
    async def _poll(self) -> None:
        self._poll_scheduled = False
        self._poll_timer = None
        if len(self.screen_stack) > 1:  # another screen on top: look again shortly
            self._schedule_poll()
            return
        self._polling = True
        now = time.monotonic()
        full = now - self._last_full >= FULL_REFRESH_EVERY
        started = time.perf_counter()
        try:
            rows, complete = await self.client.executions(self.table.active_ids, full, self.max_rows)
        except ClientError as error:
            self._polling = False
            self.notify(error.message, title="Cannot refresh executions", severity="error", timeout=4)
            self._schedule_poll(delay=2.0)
            return
        self._polling = False
        if full:
            self._last_full = now
        self.post_message(ExecutionsFetched(rows, complete, time.perf_counter() - started))

    def _schedule_poll(self, delay: float | None = None) -> None:
        if self._nudged:
            self._nudged = False
            delay = 0.01  # Textual timers need a positive delay
        if not self._poll_scheduled:
            self._poll_scheduled = True
            self._poll_timer = self.set_timer(delay if delay is not None else self.poll_interval, self._poll)

    def poll_now(self) -> None:
        self._poll()

    @on(ExecutionsFetched)
    def _fetched(self, message: ExecutionsFetched) -> None:
        if not self.table.is_mounted:  # shutting down
            return
        self.last_fetch_seconds = message.seconds
        self.fetches += 1
        self.table.merge(message.rows, message.complete)
        self._refresh_status_line()
        self._schedule_poll()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's unexpected error ends here: a notification, never a crash."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title="flowdeck bug (please report)", severity="error")
            if event.worker.group == "executions":
                self._schedule_poll(delay=2.0)

    # filters ---------------------------------------------------------------------------
    def _apply_filter(self, **changes: Any) -> None:
        current = self.table.filter
        self.table.set_filter(ExecutionFilter(**{**current.__dict__, **changes}))
        self._refresh_status_line()

    @on(Select.Changed, "#filter-status")
    def _status_changed(self, event: Select.Changed) -> None:
        self._apply_filter(status=None if event.value is Select.NULL else str(event.value))

    @on(Select.Changed, "#filter-workflow")
    def _workflow_changed(self, event: Select.Changed) -> None:
        self._apply_filter(workflow_id=None if event.value is Select.NULL else str(event.value))

    @on(Input.Changed, "#filter-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._apply_filter(search=event.value.strip())

    @on(Input.Submitted, "#filter-search")
    def _search_done(self) -> None:
        self.table.focus()

    def filter_status(self, status: str | None) -> None:
        select = self._main_query("#filter-status", Select)
        if status is None:
            select.clear()
        else:
            select.value = status

    def filter_workflow(self, workflow_id: str | None) -> None:
        select = self._main_query("#filter-workflow", Select)
        if workflow_id is None:
            select.clear()
        else:
            select.value = workflow_id

    def clear_filters(self) -> None:
        self.filter_status(None)
        self.filter_workflow(None)
        self._main_query("#filter-search", Input).value = ""

    def action_cycle_status(self) -> None:
        order: list[str | None] = [None, *STATUSES]
        current = self.table.filter.status
        self.filter_status(order[(order.index(current) + 1) % len(order)])

    def action_toggle_workflow(self) -> None:
        selection = self._main_query(WorkflowsPane).selection
        target = selection.workflow_id if selection else None
        self.filter_workflow(None if self.table.filter.workflow_id == target else target)

    def action_search(self) -> None:
        self._main_query("#filter-search", Input).focus()

    # workflows --------------------------------------------------------------------------
    def action_next_problem(self) -> None:
        tree = self._main_query("#workflow-tree")
        nodes = [
            n for n in _walk(tree.root) if n.data is not None and n.data.file is not None and n.data.file.has_errors
        ]
        if not nodes:
            self.notify("every definition is valid")
            return
        current = tree.cursor_node
        after = [n for n in nodes if current is None or n.line > current.line]
        tree.move_cursor((after or nodes)[0])
        tree.focus()

    def action_reload(self) -> None:
        self.client.reload()
        self._show_workflows()
        self.notify("definitions reloaded")

    @on(WorkflowsPane.Selected)
    def _workflow_selected(self, message: WorkflowsPane.Selected) -> None:
        return None

    # launch -----------------------------------------------------------------------------
    def action_launch(self) -> None:
        selection: Selection | None = self._main_query(WorkflowsPane).selection
        version = selection.version if selection else None
        if version is None:
            if selection and selection.file and selection.file.has_errors:
                self.notify("this definition has errors: fix them before running it", severity="warning")
            else:
                self.notify("choose a workflow first (tab to the workflows tree)", severity="warning")
            return
        self.launch(version)

    def launch(
        self, version: WorkflowVersion, *, mode: str | None = None, input_data: dict[str, Any] | None = None
    ) -> None:
        versions = [v for v in self.client.workflows() if v.workflow_id == version.workflow_id]
        screen = LaunchScreen(self.client, versions, version, mode=mode, input_data=input_data)
        self.push_screen(screen, self._launch_chosen)

    def _launch_chosen(self, request: LaunchRequest | None) -> None:
        if request is not None:
            self._start(request)

    @work(group="launch", exit_on_error=False)
    async def _start(self, request: LaunchRequest) -> None:
        label = f"{request.workflow_id}@{request.version}"
        try:
            if request.mode == "sync":
                self.notify(f"running {label} (sync)…", timeout=2)
                body = await self.client.run_sync(request.workflow_id, request.version, request.input_data)
            else:
                body = await self.client.submit(request.workflow_id, request.version, request.input_data)
        except ClientError as error:
            problems = "".join(f"\n{p.field}: {p.message}" for p in error.details)
            self.notify(error.message + problems, title=f"Cannot run {label}", severity="error", timeout=8)
            return
        self.post_message(Launched(request, body))

    @on(Launched)
    def _launched(self, message: Launched) -> None:
        body, request = message.body, message.request
        execution_id = body.get("execution_id", "")
        if request.mode == "async":
            from datetime import datetime

            now = datetime.now(UTC)
            self.table.merge(
                [
                    ExecutionRow(
                        execution_id,
                        request.workflow_id,
                        str(request.version),
                        "async",
                        body.get("status", "pending"),
                        None,
                        now,
                        None,
                        None,
                    )
                ],
                complete=False,
            )
            self.notify(execution_id, title=f"{request.workflow_id}@{request.version} submitted")
            self._refresh_status_line()
            self.poll_now()
        else:
            severity: SeverityLevel = "error" if body.get("status") == "failed" else "information"
            self.notify(
                f"{body.get('status')} {execution_id}",
                title=f"{request.workflow_id}@{request.version}",
                severity=severity,
            )
            self.push_screen(DetailScreen(self.client, execution_id, show_clocks=self.show_clocks, initial=body))

    # executions ---------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: ExecutionsTable.RowSelected) -> None:
        if event.data_table is self.table and event.row_key.value:
            self.open_execution(str(event.row_key.value))

    def action_open(self) -> None:
        if self.focused is self.table and self.table.selected_id:
            self.open_execution(self.table.selected_id)

    def open_execution(self, execution_id: str) -> None:
        self.push_screen(DetailScreen(self.client, execution_id, show_clocks=self.show_clocks))

    def _selected_or_warn(self) -> str | None:
        selected = self.table.selected_id
        if selected is None:
            self.notify("no execution selected", severity="warning")
        return selected

    def action_cancel(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.cancel_execution(selected)

    def cancel_execution(self, execution_id: str) -> None:
        self._cancel(execution_id)

    @work(group="cancel", exit_on_error=False)
    async def _cancel(self, execution_id: str) -> None:
        try:
            body = await self.client.cancel(execution_id)
        except ClientError as error:
            self.notify(error.message, title="Cannot cancel", severity="error")
            return
        self.notify(f"{body.get('status')} {execution_id}", title="Cancel")
        self.poll_now()

    def action_rerun(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.rerun_execution(selected, None)

    def rerun_execution(self, execution_id: str, detail: ExecutionDetail | None) -> None:
        self._rerun(execution_id, detail)

    @work(group="rerun", exit_on_error=False)
    async def _rerun(self, execution_id: str, detail: ExecutionDetail | None) -> None:
        try:
            detail = detail or await self.client.detail(execution_id)
        except ClientError as error:
            self.notify(error.message, title="Cannot re-run", severity="error")
            return
        row = detail.row
        version = int(row.version) if row.version.isdigit() else row.version
        if not isinstance(version, int):
            self.notify(f"version {row.version!r} is not a number", title="Cannot re-run", severity="error")
            return
        request = LaunchRequest(
            row.workflow_id, version, "sync" if row.mode == "sync" else "async", detail.input_data or {}
        )
        self._start(request)

    def action_copy_id(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.copy_to_clipboard(selected)
            self.notify(f"copied {selected}")

    def action_open_prefect(self) -> None:
        selected = self._selected_or_warn()
        url = self.client.prefect_url(selected) if selected else None
        if url:
            self.open_url(url)
            self.notify(url, title="Opening the Prefect UI")

    # quitting ------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if not self.started_services:
            self.exit(None)
            return

        def chosen(choice: str | None) -> None:
            if choice is not None:
                self.exit(choice)

        self.push_screen(QuitScreen(self.started_services), chosen)

    async def on_unmount(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # leaving: nothing left to show
            pass


def _walk(node: Any) -> list[Any]:
    found = [node]
    for child in node.children:
        found.extend(_walk(child))
    return found


def build_app(
    client: Client | None = None, *, show_clocks: bool = True, poll_interval: float = 0.5, **options: Any
) -> FlowdeckApp:
    """The App, not running. Without a client: fixed sample data (no Prefect needed)."""
    if client is None:
        from flowdeck.tui.fixed import FixedClient

        client = FixedClient()
    return FlowdeckApp(client, show_clocks=show_clocks, poll_interval=poll_interval, **options)
