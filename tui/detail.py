"""One execution's story, live while it runs:

header       id, workflow@version, mode, status, attempt, trigger, created/started/ended,
             duration, countdown to resume
steps        one row per executed step (a retried step once per try) with a bar on the
             execution's shared time axis: retries and waits visible, sync and async alike
tabs         output (the selected step's output or error, and the final one) · input
             (input and trigger payload as JSON) · logs (follow mode, text and level
             filter) · playground (an expression against this execution's context)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, RichLog, Static, TabbedContent, TabPane

from flowdeck.tui.client import Client, ClientError, ExecutionDetail, LogLine, StepRow
from flowdeck.tui.format import clock, countdown, duration, pretty_json, status_text
from flowdeck.tui.playground import Playground, context_of
from flowdeck.tui.timeline import axis_of, bar
from flowdeck.tui.vim import VimTable

__all__ = ["DetailScreen", "FollowLog"]

TERMINAL = ("success", "failed", "cancelled")
COLUMNS = (("#", 2), ("step", 20), ("status", 11), ("try", 3), ("took", 9))
STEP_WIDTH = (20, 40)  # the step column fits its longest name (and branch) within these
LEVELS = ("ALL", "INFO", "WARNING", "ERROR")
LEVEL_RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
MAX_LOG_LINES = 5000
MAX_FILTER = 200  # characters in the log filter


class DetailLoaded(Message):
    def __init__(self, detail: ExecutionDetail) -> None:
        super().__init__()
        self.detail = detail


class LogsLoaded(Message):
    def __init__(self, lines: list[LogLine]) -> None:
        super().__init__()
        self.lines = lines


class FollowLog(RichLog):
    """A log that follows new lines until the user scrolls up; `G` (or `f`) follows again."""

    BINDINGS = [
        Binding("G", "follow", "Follow logs", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("g", "scroll_home", "Top", show=False),
    ]

    def action_follow(self) -> None:
        self.follow()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old and new < self.max_scroll_y:
            self.auto_scroll = False
            self.border_subtitle = "follow off (G resumes)"

    def follow(self) -> None:
        self.auto_scroll = True
        self.border_subtitle = "following"
        self.scroll_end(animate=False)


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "rerun", "Re-run"),
        Binding("R", "rerun_edited", "Edit+re-run", show=False),
        Binding("c", "cancel", "Cancel run"),
        Binding("y", "copy_id", "Copy id", show=False),
        Binding("o", "open_prefect", "Prefect UI", show=False),
        Binding("1", "tab('output')", "Output", show=False),
        Binding("2", "tab('input')", "Input", show=False),
        Binding("3", "tab('logs')", "Logs"),
        Binding("4", "tab('playground')", "Eval"),
        Binding("f", "follow", "Follow logs", show=False),
        Binding("slash", "log_filter", "Filter logs", show=False),
        Binding("L", "cycle_level", "Log level", show=False),
        Binding("question_mark,f1", "app.help", "Help", key_display="?"),
    ]

    def __init__(
        self,
        client: Client,
        execution_id: str,
        *,
        show_clocks: bool = True,
        initial: dict[str, Any] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.client = client
        self.execution_id = execution_id
        self.show_clocks = show_clocks
        self.initial = initial
        self.poll_interval = poll_interval
        self.detail: ExecutionDetail | None = None
        self.lines: list[LogLine] = []
        self.level = "ALL"
        self._last_log: datetime | None = None
        self._tail_polls = 0
        self._step_width = STEP_WIDTH[0]

    def compose(self) -> ComposeResult:
        with Vertical(id="detail"):
            yield Static(self.execution_id, id="detail-header")
            yield VimTable(id="steps", cursor_type="row")
            with TabbedContent(id="detail-tabs", initial="output"):
                with TabPane("1 output", id="output"), VerticalScroll(id="output-scroll"):
                    yield Static("loading…", id="step-output")
                with TabPane("2 input", id="input"), VerticalScroll():
                    yield Static("", id="detail-input")
                with TabPane("3 logs", id="logs-tab"):
                    yield Input(
                        placeholder="/ filter logs (text)", id="log-filter", max_length=MAX_FILTER, compact=True
                    )
                    yield FollowLog(id="logs", wrap=True, markup=False, highlight=False, max_lines=MAX_LOG_LINES)
                with TabPane("4 playground", id="playground"):
                    yield Playground(id="expr-playground")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#steps", DataTable)
        self._columns(table)
        log = self.query_one("#logs", FollowLog)
        log.border_title = "logs · level ALL"
        log.border_subtitle = "following"
        if not self.show_clocks:
            for field in self.query(Input):
                field.cursor_blink = False
        if self.initial is not None:
            self._show_outcome(self.initial)
        table.focus()
        self._fetch()
        if self.show_clocks:
            self.set_interval(1.0, self._tick)

    def _columns(self, table: DataTable[object]) -> None:
        table.clear(columns=True)
        for name, width in COLUMNS:
            table.add_column(name, key=name, width=self._step_width if name == "step" else width)
        table.add_column("timeline", key="timeline", width=self._bar_width())

    def _bar_width(self) -> int:
        width = self.size.width or 80
        fixed = sum((self._step_width if name == "step" else w) + 2 for name, w in COLUMNS)
        return max(10, width - fixed - 6)

    def on_resize(self) -> None:
        if self.detail is not None and self.is_mounted:
            table = self.query_one("#steps", DataTable)
            keep = table.cursor_row
            self._columns(table)
            self._show(self.detail)
            if table.row_count:
                table.move_cursor(row=min(keep, table.row_count - 1), animate=False)

    # fetching: one worker at a time, rescheduled after each answer ----------------------
    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _fetch(self) -> None:
        try:
            detail = await self.client.detail(self.execution_id)
            lines = await self.client.logs(self.execution_id, self._last_log)
        except ClientError as error:
            if self.detail is None and self.initial is None:
                self.query_one("#step-output", Static).update(Text(f"✗ {error.message}", style="bold red"))
                self.notify(error.message, title="Cannot load the execution", severity="error")
            else:  # a refresh failed: keep what is shown, try again
                self.set_timer(2.0, self._fetch)
            return
        self.post_message(DetailLoaded(detail))
        self.post_message(LogsLoaded(lines))

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        first = self.detail is None
        changed = self.detail != message.detail
        self.detail = message.detail
        if changed:  # nothing new: nothing drawn (no terminal output while idle)
            self._show(message.detail)
        if first:
            self._show_input(message.detail)
            self.query_one(Playground).set_context(context_of(message.detail))
        elif changed:
            self.query_one(Playground).set_context(context_of(message.detail))
        ended = message.detail.row.status in TERMINAL
        if ended:
            self._tail_polls += 1
        if not ended or self._tail_polls < 6:  # logs and step records arrive a little later
            self.set_timer(self.poll_interval if not ended else 1.0, self._fetch)

    @on(LogsLoaded)
    def _logs(self, message: LogsLoaded) -> None:
        fresh = [line for line in message.lines if self._last_log is None or line.timestamp > self._last_log]
        if not fresh:
            return
        self.lines = (self.lines + fresh)[-MAX_LOG_LINES:]
        self._last_log = max(line.timestamp for line in self.lines)
        log = self.query_one("#logs", FollowLog)
        for line in fresh:
            if self._accepts(line):
                log.write(self._log_text(line))

    def _accepts(self, line: LogLine) -> bool:
        if self.level != "ALL" and LEVEL_RANK.get(line.level, 20) < LEVEL_RANK[self.level]:
            return False
        needle = self.query_one("#log-filter", Input).value.strip().lower()
        return not needle or needle in line.message.lower()

    def _log_text(self, line: LogLine) -> Text:
        stamp = clock(line.timestamp, self.show_clocks)
        style = {"ERROR": "bold red", "WARNING": "yellow", "CRITICAL": "bold red"}.get(line.level, "")
        return Text.assemble((f"{stamp} ", "dim"), (f"{line.level:<7} ", style), line.message)

    def _redraw_logs(self) -> None:
        log = self.query_one("#logs", FollowLog)
        log.clear()
        shown = [line for line in self.lines if self._accepts(line)]
        for line in shown:
            log.write(self._log_text(line))
        needle = self.query_one("#log-filter", Input).value.strip()
        log.border_title = f"logs · level {self.level}" + (f" · ~{needle}" if needle else "")
        if not shown:
            log.write(Text("no log line matches" if self.lines else "no log lines yet", style="dim"))

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self) -> None:
        self._redraw_logs()

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self) -> None:
        self.query_one("#logs", FollowLog).focus()

    # drawing --------------------------------------------------------------------------
    def _now(self) -> datetime | None:
        return datetime.now(UTC) if self.show_clocks else None

    def _header(self, detail: ExecutionDetail) -> Text:
        row, body = detail.row, detail.body
        trigger = (detail.trigger or {}).get("type", "?")
        text = Text.assemble(
            status_text(row.status),
            f"  {row.workflow_id}@{row.version} · {row.mode} · attempt {body.get('attempt', 1)} · trigger {trigger}",
        )
        if row.status == "waiting" and row.resume_at is not None:
            text.append(f"  {countdown(row.resume_at, self.show_clocks)}", style="bold cyan")
        text.append("\n")
        text.append(row.execution_id, style="bold")
        text.append("  (y copies, o opens Prefect)\n", style="dim")
        text.append(
            f"created {clock(row.created_at, self.show_clocks)} · started {clock(row.started_at, self.show_clocks)}"
            f" · ended {clock(row.ended_at, self.show_clocks)}"
            f" · took {duration(row.started_at, row.ended_at, self.show_clocks)}",
            style="dim",
        )
        return text

    def _show(self, detail: ExecutionDetail) -> None:
        self.query_one("#detail-header", Static).update(self._header(detail))
        table = self.query_one("#steps", DataTable)
        keep = table.cursor_row
        longest = max((len(s.name) + (len(s.branch) + 3 if s.branch else 0) for s in detail.steps), default=0)
        room = max(STEP_WIDTH[0], (self.size.width or 80) // 3)
        wanted = max(STEP_WIDTH[0], min(STEP_WIDTH[1], room, longest))
        if wanted != self._step_width:
            self._step_width = wanted
            self._columns(table)
        now = self._now()
        axis = axis_of(detail.steps, detail.row.started_at, now, detail.row.ended_at)
        width = self._bar_width()
        with self.app.batch_update():
            for index, step in enumerate(detail.steps):
                cells = (*self._step_cells(index, step), bar(step, axis, width, now))
                key = f"{index}:{step.key}"
                if key in table.rows:
                    for (name, _), value in zip((*COLUMNS, ("timeline", 0)), cells, strict=True):
                        if table.get_cell(key, name) != value:
                            table.update_cell(key, name, value)
                else:
                    table.add_row(*cells, key=key)
            if table.row_count:
                table.move_cursor(row=min(keep, table.row_count - 1), animate=False)
        table.border_title = f"steps ({len(detail.steps)})"
        self._show_step_output()

    def _step_cells(self, index: int, step: StepRow) -> tuple[object, ...]:
        name = Text(step.name)
        if step.branch:
            name.append(f" → {step.branch}", style="cyan")
        ended = step.ended_at if step.status in TERMINAL else None
        return (
            str(index + 1),
            name,
            status_text(step.status),
            str(step.try_number),
            duration(step.started_at, ended or step.ended_at, self.show_clocks),
        )

    def _selected_step(self) -> StepRow | None:
        detail = self.detail
        table = self.query_one("#steps", DataTable)
        if detail is None or not detail.steps or table.cursor_row >= len(detail.steps):
            return None
        return detail.steps[table.cursor_row]

    def _show_step_output(self) -> None:
        """The selected step's output or error, then the execution's final output or error."""
        detail = self.detail
        if detail is None:
            return
        parts: list[Any] = []
        step = self._selected_step()
        if step is not None:
            title = f"step {step.name} (try {step.try_number})" + (f" → branch {step.branch}" if step.branch else "")
            parts.append(Text(title, style="bold"))
            if step.error:
                parts.append(Text(f"✗ {step.error}", style="bold red"))
            elif step.has_output:
                parts.append(Syntax(pretty_json(step.output), "json", theme="ansi_dark", word_wrap=True))
            elif step.status == "failed":
                parts.append(Text("✗ this try failed; the step ran again (see the next try)", style="red"))
            elif step.status == "waiting":
                parts.append(Text(f"waiting · {countdown(detail.row.resume_at, self.show_clocks)}", style="cyan"))
            elif step.status == "cancelled":
                parts.append(Text("cancelled here: the execution was cancelled while this step ran", "magenta"))
            else:
                parts.append(Text("(no recorded output)" if step.status in TERMINAL else f"({step.status})", "dim"))
            parts.append(Text(""))
        outcome = self._outcome(detail.body)
        if outcome is not None:
            parts.append(outcome)
        elif not detail.steps:
            parts.append(Text(f"({detail.row.status}: no step has run yet)", style="dim"))
        self.query_one("#step-output", Static).update(Group(*parts))

    def _show_input(self, detail: ExecutionDetail) -> None:
        self.query_one("#detail-input", Static).update(
            Group(
                Text("input", style="bold"),
                Syntax(pretty_json(detail.input_data or {}), "json", theme="ansi_dark", word_wrap=True),
                Text("\ntrigger", style="bold"),
                Syntax(pretty_json(detail.trigger or {}), "json", theme="ansi_dark", word_wrap=True),
            )
        )

    def _show_outcome(self, body: dict[str, Any]) -> None:
        outcome = self._outcome(body)
        self.query_one("#step-output", Static).update(
            outcome if outcome is not None else Text(f"({body.get('status', '…')})", style="dim")
        )

    @staticmethod
    def _outcome(body: dict[str, Any]) -> Any:
        if body.get("error"):
            error = body["error"] or {}
            return Text.assemble(
                ("final error at step ", "bold red"),
                (str(error.get("step_name")), "bold"),
                "\n",
                (str(error.get("message")), "red"),
            )
        if "output" in body:
            return Group(
                Text("final output", style="bold green"),
                Syntax(pretty_json(body["output"]), "json", theme="ansi_dark", word_wrap=True),
            )
        return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_step_output()

    def _tick(self) -> None:
        if self.detail is not None and self.detail.row.status not in TERMINAL:
            self._show(self.detail)

    # actions -------------------------------------------------------------------------
    def action_back(self) -> None:
        focused = self.focused
        if isinstance(focused, Input) or isinstance(focused, FollowLog):
            self.query_one("#steps", DataTable).focus()  # esc leaves a field first
            return
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "logs-tab" if tab == "logs" else tab
        if tab == "playground":
            self.query_one("#expr", Input).focus()

    def action_follow(self) -> None:
        self.query_one(TabbedContent).active = "logs-tab"
        self.query_one("#logs", FollowLog).follow()

    def action_log_filter(self) -> None:
        self.query_one(TabbedContent).active = "logs-tab"
        self.query_one("#log-filter", Input).focus()

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]
        self.query_one(TabbedContent).active = "logs-tab"
        self._redraw_logs()

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.execution_id)
        self.notify(f"copied {self.execution_id}")

    def action_open_prefect(self) -> None:
        if self.detail is None or not self.detail.ui_url:
            self.notify("the execution is still loading", severity="warning")
            return
        self.app.open_url(self.detail.ui_url)
        self.notify(self.detail.ui_url, title="Opening the Prefect UI")

    def action_rerun(self) -> None:
        self.app.rerun_execution(self.execution_id, self.detail)  # type: ignore[attr-defined]

    def action_rerun_edited(self) -> None:
        self.app.rerun_execution(self.execution_id, self.detail, edit=True)  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        self.app.confirm_cancel([self.execution_id])  # type: ignore[attr-defined]
