"""One execution: its steps in order (with the branch each condition took), status, attempt,
duration and output per step, the wait countdown, the final output or error, and Prefect's
logs of the run, streaming."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static

from flowdeck.tui.client import Client, ClientError, ExecutionDetail, LogLine, StepRow
from flowdeck.tui.format import clock, countdown, duration, pretty_json, status_text

__all__ = ["DetailScreen"]

TERMINAL = ("success", "failed", "cancelled")


class DetailLoaded(Message):
    def __init__(self, detail: ExecutionDetail) -> None:
        super().__init__()
        self.detail = detail


class LogsLoaded(Message):
    def __init__(self, lines: list[LogLine]) -> None:
        super().__init__()
        self.lines = lines


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("y", "copy_id", "Copy id"),
        Binding("o", "open_prefect", "Prefect UI"),
        Binding("r", "rerun", "Re-run"),
        Binding("c", "cancel", "Cancel run"),
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
        self._last_log: datetime | None = None
        self._tail_polls = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="detail"):
            yield Static(self.execution_id, id="detail-id")
            yield Static("loading…", id="detail-summary")
            with Horizontal(id="detail-body"):
                steps: DataTable[object] = DataTable(id="steps", cursor_type="row")
                yield steps
                yield Static("", id="step-output")
            yield RichLog(id="logs", wrap=True, markup=False, highlight=False, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#steps", DataTable)
        for name, width in (("#", 2), ("step", 18), ("status", 11), ("branch", 10), ("try", 3), ("took", 6)):
            table.add_column(name, key=name, width=width)
        self.query_one("#logs", RichLog).border_title = "Prefect logs"
        self.query_one("#step-output", Static).border_title = "output"
        if self.initial is not None:
            self._show_initial(self.initial)
        self._fetch()
        if self.show_clocks:
            self.set_interval(1.0, self._tick)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 120, "-narrow")

    # fetching: one worker at a time, rescheduled after each answer ----------------------
    @work(exclusive=True, group="detail")
    async def _fetch(self) -> None:
        try:
            detail = await self.client.detail(self.execution_id)
            lines = await self.client.logs(self.execution_id, self._last_log)
        except ClientError as error:
            if self.detail is None and self.initial is None:
                self.notify(error.message, title="Cannot load the execution", severity="error")
            else:  # a refresh failed: keep what is shown, try again
                self.set_timer(2.0, self._fetch)
            return
        self.post_message(DetailLoaded(detail))
        self.post_message(LogsLoaded(lines))

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        self.detail = message.detail
        self._show(message.detail)
        ended = message.detail.row.status in TERMINAL
        if ended:
            self._tail_polls += 1
        if not ended or self._tail_polls < 6:  # logs and step records arrive a little later
            self.set_timer(self.poll_interval if not ended else 1.0, self._fetch)

    @on(LogsLoaded)
    def _logs(self, message: LogsLoaded) -> None:
        log = self.query_one("#logs", RichLog)
        for line in message.lines:
            stamp = clock(line.timestamp, self.show_clocks)
            style = {"ERROR": "bold red", "WARNING": "yellow", "CRITICAL": "bold red"}.get(line.level, "")
            log.write(Text.assemble((f"{stamp} ", "dim"), (f"{line.level:<7} ", style), line.message))
            self._last_log = max(self._last_log or line.timestamp, line.timestamp)

    # drawing --------------------------------------------------------------------------
    def _show_initial(self, body: dict[str, Any]) -> None:
        summary = Text.assemble(status_text(body.get("status", "?")), "  sync result")
        self.query_one("#detail-summary", Static).update(summary)
        self._show_outcome(body)

    def _summary(self, detail: ExecutionDetail) -> Text:
        row = detail.row
        text = Text.assemble(
            status_text(row.status),
            f"  {row.workflow_id}@{row.version}  {row.mode}  attempt {detail.body.get('attempt', 1)}",
            f"  started {clock(row.started_at, self.show_clocks)}",
            f"  took {duration(row.started_at, row.ended_at, self.show_clocks)}",
        )
        if row.status == "waiting" and row.resume_at is not None:
            text.append(f"  {countdown(row.resume_at, self.show_clocks)}", style="bold cyan")
        return text

    def _show(self, detail: ExecutionDetail) -> None:
        self.query_one("#detail-id", Static).update(
            Text.assemble(
                ("execution ", "dim"), (detail.row.execution_id, "bold"), ("  (y copies, o opens Prefect)", "dim")
            )
        )
        self.query_one("#detail-summary", Static).update(self._summary(detail))
        table = self.query_one("#steps", DataTable)
        keep = table.cursor_row
        with self.app.batch_update():
            for index, step in enumerate(detail.steps):
                cells = self._step_cells(index, step)
                key = f"{index}:{step.key}"
                if key in table.rows:
                    for name, value in zip(("#", "step", "status", "branch", "try", "took"), cells, strict=True):
                        if table.get_cell(key, name) != value:
                            table.update_cell(key, name, value)
                else:
                    table.add_row(*cells, key=key)
            if table.row_count:
                table.move_cursor(row=min(keep, table.row_count - 1), animate=False)
        self._show_step_output()

    def _step_cells(self, index: int, step: StepRow) -> tuple[object, ...]:
        return (
            str(index + 1),
            step.name,
            status_text(step.status),
            step.branch or "",
            str(step.attempt),
            duration(step.started_at, step.ended_at, self.show_clocks),
        )

    def _show_step_output(self) -> None:
        """The final output or error first (once there is one), then the selected step's output."""
        detail = self.detail
        if detail is None:
            return
        table = self.query_one("#steps", DataTable)
        step = detail.steps[table.cursor_row] if detail.steps and table.cursor_row < len(detail.steps) else None
        parts: list[Any] = []
        outcome = self._outcome(detail.body)
        if outcome is not None:
            parts.append(outcome)
        if step is not None:
            parts.append(
                Text(f"step {step.name}" + (f" → branch {step.branch}" if step.branch else ""), style="bold dim")
            )
            if step.has_output:
                parts.append(Syntax(pretty_json(step.output), "json", theme="ansi_dark", word_wrap=True))
            else:
                parts.append(
                    Text("(no recorded output)" if step.status in TERMINAL else f"({step.status})", style="dim")
                )
        pane = self.query_one("#step-output", Static)
        pane.border_title = "output"
        pane.update(Group(*parts))

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
                ("error at step ", "bold red"),
                (str(error.get("step_name")), "bold"),
                "\n",
                (str(error.get("message")), "red"),
                "\n",
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
            self.query_one("#detail-summary", Static).update(self._summary(self.detail))

    # actions -------------------------------------------------------------------------
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

    def action_cancel(self) -> None:
        self.app.cancel_execution(self.execution_id)  # type: ignore[attr-defined]
