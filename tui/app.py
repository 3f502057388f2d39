"""The flowdeck dashboard: workflows on top, live executions below, no key press needed.

`build_app()` makes the App without running it (snapshot tests and `textual-serve` use it);
`tui/main.py` runs it. The main screen's keys live on `MainScreen`, so another screen on
top never answers them (a detail screen's `s` is not the hidden table's status filter);
the App holds the keys of every screen (help, palette, quit).

Fetching happens in async workers that post messages; the handlers own every widget
change. The executions refresh reschedules itself after each answer (no overlapping
polls) and pauses while another screen is on top.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Select, Static
from textual.worker import Worker, WorkerState

from flowdeck.tui.actions import ExecutionActions
from flowdeck.tui.client import STATUSES, Client, ClientError, ExecutionRow
from flowdeck.tui.commands import FlowdeckCommands
from flowdeck.tui.dialogs import QuitScreen
from flowdeck.tui.executions import ExecutionFilter, ExecutionsTable
from flowdeck.tui.header import Connection, Header
from flowdeck.tui.help import HelpScreen, key_groups
from flowdeck.tui.memory import LaunchMemory
from flowdeck.tui.structure import WorkflowScreen
from flowdeck.tui.workflows import Selection, WorkflowsPane

__all__ = ["FlowdeckApp", "MainScreen", "build_app"]

FULL_REFRESH_EVERY = 10.0  # seconds between full reloads (deleted rows, older pages)
MAX_SEARCH = 200  # characters in the search field


class ExecutionsFetched(Message):
    def __init__(self, rows: list[ExecutionRow], complete: bool) -> None:
        super().__init__()
        self.rows = rows
        self.complete = complete


class MainScreen(Screen[None]):
    """The App's default screen (its widgets come from `FlowdeckApp.compose`). Its keys act
    on the App, and only while it is on top."""

    HELP_GROUPS = {  # the help overlay's sections, by action
        **dict.fromkeys(("app.launch", "app.view_workflow", "app.next_problem", "app.reload"), "workflows"),
        **dict.fromkeys(
            ("app.open", "app.rerun", "app.rerun_edited", "app.cancel", "app.clear_marks", "app.copy_id"),
            "executions",
        ),
        "app.open_prefect": "executions",
        **dict.fromkeys(("app.search", "app.cycle_status", "app.toggle_workflow", "app.clear_filters"), "filters"),
    }

    BINDINGS = [
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
        Binding("l", "app.launch", "Launch"),
        Binding("v", "app.view_workflow", "Structure"),
        Binding("E", "app.next_problem", "Next broken file", show=False),
        Binding("f5", "app.reload", "Reload definitions", show=False),
        Binding("enter", "app.open", "Detail", show=False),
        Binding("r", "app.rerun", "Re-run"),
        Binding("R", "app.rerun_edited", "Edit+re-run", show=False),
        Binding("c", "app.cancel", "Cancel"),
        Binding("escape", "app.clear_marks", "Unmark all", show=False),
        Binding("y", "app.copy_id", "Copy id", show=False),
        Binding("o", "app.open_prefect", "Prefect UI", show=False),
        Binding("slash", "app.search", "Search"),
        Binding("s", "app.cycle_status", "Status filter", show=False),
        Binding("w", "app.toggle_workflow", "Workflow filter", show=False),
        Binding("x", "app.clear_filters", "Clear filters", show=False),
    ]


class FlowdeckApp(ExecutionActions, App[str | None]):
    """The dashboard. The App's return value: "stop" / "keep" for the services it started."""

    TITLE = "flowdeck"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {FlowdeckCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help", show=False),
    ]

    def __init__(
        self,
        client: Client,
        *,
        show_clocks: bool = True,
        poll_interval: float = 0.5,
        max_rows: int = 5000,
        started_services: list[str] | None = None,
        open_execution: str | None = None,
        open_workflow: str | None = None,
        memory: LaunchMemory | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.show_clocks = show_clocks
        self.poll_interval = poll_interval
        self.max_rows = max_rows
        self.started_services = started_services or []
        self.memory = memory or LaunchMemory()
        self.open_at = (open_execution, open_workflow)
        self.connection = Connection(client.description)
        self.header = Header(self.connection, show_clocks=show_clocks, id="status-line")
        self.table = ExecutionsTable(show_clocks=show_clocks, id="executions")
        self.main = MainScreen()
        self.fetches = 0
        self._last_full = 0.0
        self._poll_scheduled = False
        self._poll_timer: Any = None
        self._polling = False
        self._nudged = False

    # layout ---------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def compose(self) -> ComposeResult:
        """The main screen: header, workflows (tree + source), filters, executions."""
        yield self.header
        yield WorkflowsPane(id="workflows")
        with Horizontal(id="filters"):
            yield Select([(s, s) for s in STATUSES], prompt="any status", id="filter-status", compact=True)
            yield Select([], prompt="any workflow", id="filter-workflow", compact=True)
            yield Input(
                placeholder="/ search id, workflow, status, step",
                id="filter-search",
                max_length=MAX_SEARCH,
                compact=True,
            )
        yield self.table
        yield Static("", id="empty-message")
        yield Footer()

    def on_mount(self) -> None:
        if not self.show_clocks:
            for widget in self.main.query(Input):
                widget.cursor_blink = False
        self.table.border_title = "executions"
        self._refresh_status_line()
        self.main.query_one("#workflows").border_title = "workflows"
        self._show_workflows()
        self.table.focus()
        self._poll()
        self._follow_changes()
        if self.show_clocks:
            self.set_interval(1.0, self._tick)
        execution_id, workflow_id = self.open_at
        if workflow_id:
            self.call_after_refresh(self.open_workflow, workflow_id)
        if execution_id:
            self.call_after_refresh(self.open_execution, execution_id)

    def _main_query(self, selector: Any, expect_type: Any = None) -> Any:
        """Widgets of the main screen, whichever screen is on top."""
        return self.main.query_one(selector, expect_type)

    def _show_workflows(self) -> None:
        versions = self.client.workflows()
        self._main_query(WorkflowsPane).show(versions, self.client.files())
        ids = sorted({v.workflow_id for v in versions})
        select = self._main_query("#filter-workflow", Select)
        select.set_options([(i, i) for i in ids])

    def _refresh_status_line(self) -> None:
        if not self.header.is_mounted:
            return
        self.header.show(
            list(self.table.known.values()), self.table.row_count, self.table.filter.describe(), self._backlog()
        )
        try:
            message = self._main_query("#empty-message", Static)
        except NoMatches:  # the main screen is mounting or being torn down (a tick between)
            return
        text = self.table.empty_message
        if text != getattr(message, "shown_text", None):  # an unchanged line is not drawn again
            message.shown_text = text
            message.display = bool(text)
            message.update(text)

    def _backlog(self) -> dict[str, Any] | None:
        """The outbox's backlog for the header (None: this client cannot say)."""
        try:
            return self.client.backlog()
        except Exception:  # an unreadable outbox must not take the header down
            return None

    def _tick(self) -> None:
        if self.screen is self.main:
            self.table.tick()
            self._refresh_status_line()

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
        if self.screen is not self.main and self.fetches:  # another screen on top: look again shortly
            self._schedule_poll()
            return
        self._polling = True
        now = time.monotonic()
        full = now - self._last_full >= FULL_REFRESH_EVERY
        try:
            rows, complete = await self.client.executions(self.table.active_ids, full, self.max_rows)
        except ClientError as error:
            self._polling = False
            first = self.connection.lost_since is None
            self.connection.lost(datetime.now(UTC), error.message)
            self.table.set_stale(self.connection.lost_since)
            self._refresh_status_line()
            if first:  # once per outage, not every retry
                self.notify(error.message, title="Cannot refresh executions", severity="error", timeout=6)
            self._schedule_poll(delay=2.0)
            return
        self._polling = False
        if full:
            self._last_full = now
        self.post_message(ExecutionsFetched(rows, complete))

    def _schedule_poll(self, delay: float | None = None) -> None:
        if self._nudged:
            self._nudged = False
            delay = 0.01  # Textual timers need a positive delay
        if not self._poll_scheduled:
            self._poll_scheduled = True
            self._poll_timer = self.set_timer(delay if delay is not None else self.poll_interval, self._poll)

    @on(ExecutionsFetched)
    def _fetched(self, message: ExecutionsFetched) -> None:
        if not self.table.is_mounted:  # shutting down
            return
        self.fetches += 1
        if self.connection.lost_since is not None:
            self.notify("connected again", title="Prefect", timeout=3)
        self.connection.refreshed(datetime.now(UTC))
        self.table.set_stale(None)
        self.table.merge(message.rows, message.complete)
        self._refresh_status_line()
        self._schedule_poll()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's unexpected error ends here: a notification, never a crash."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title="flowdeck bug (please report)", severity="error")
            if event.worker.group == "executions":
                self._polling = False
                self._schedule_poll(delay=2.0)

    # help --------------------------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        names = {"MainScreen": "main screen", "DetailScreen": "execution detail", "WorkflowScreen": "workflow"}
        title = names.get(type(self.screen).__name__, type(self.screen).__name__)
        self.push_screen(HelpScreen(title, key_groups(self.screen)))

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
        self._apply_filter(search=event.value.strip()[:MAX_SEARCH])

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

    def action_clear_filters(self) -> None:
        self.clear_filters()

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

    def select_workflow(self, workflow_id: str) -> bool:
        tree = self._main_query("#workflow-tree")
        for node in _walk(tree.root):
            if node.data is not None and node.data.workflow_id == workflow_id and node.parent is tree.root:
                tree.move_cursor(node)
                self._main_query(WorkflowsPane)._select(node.data)
                return True
        return False

    def open_workflow(self, workflow_id: str, version: int | None = None) -> None:
        if not self.select_workflow(workflow_id):
            known = ", ".join(sorted({v.workflow_id for v in self.client.workflows()})) or "none"
            self.notify(f"no workflow '{workflow_id}' (known: {known})", severity="error", timeout=8)
            return
        self.push_screen(WorkflowScreen(self.client, workflow_id, version))

    def action_view_workflow(self) -> None:
        selection: Selection | None = self._main_query(WorkflowsPane).selection
        if selection is None or selection.workflow_id is None:
            self.notify("choose a workflow first (tab to the workflows tree)", severity="warning")
            return
        version = selection.version.version if selection.version else None
        self.push_screen(WorkflowScreen(self.client, selection.workflow_id, version))

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

    # executions ---------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: ExecutionsTable.RowSelected) -> None:
        if event.data_table is self.table and event.row_key.value:
            self.open_execution(str(event.row_key.value))

    def action_open(self) -> None:
        if self.focused is self.table and self.table.selected_id:
            self.open_execution(self.table.selected_id)

    def _selected_or_warn(self) -> str | None:
        selected = self.table.selected_id
        if selected is None:
            self.notify("no execution selected", severity="warning")
        return selected

    def action_cancel(self) -> None:
        self.confirm_cancel(self.table.chosen_ids())

    def action_rerun(self) -> None:
        self.confirm_rerun(self.table.chosen_ids())

    def action_rerun_edited(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.rerun_execution(selected, None, edit=True)

    def action_clear_marks(self) -> None:
        self.table.clear_marks()

    def action_copy_id(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.copy_id(selected)

    def action_open_prefect(self) -> None:
        selected = self._selected_or_warn()
        if selected:
            self.open_prefect(selected)

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
