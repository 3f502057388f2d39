"""The main screen's header: what the dashboard is connected to and whether it still is
(connected / reconnecting since … / last refresh), what is running, waiting and failing,
and a sparkline of executions finished per minute. Redrawn only when its text changes, so
an idle dashboard writes nothing to the terminal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.widgets import Static

from flowdeck.tui.client import ExecutionRow
from flowdeck.tui.executions import counters, finished_per_minute, sparkline
from flowdeck.tui.format import clock

__all__ = ["Connection", "Header", "backlog_text"]

ERROR_CHARS = 60  # of the drain's last error, in the header
STUCK_AFTER_SECONDS = 5.0  # the drain's longest back-off: older than that, its last error is why


def backlog_text(backlog: dict[str, Any]) -> Text:
    """The outbox's backlog: executions committed on this machine that Prefect does not hold
    yet (`outbox ✓` when none; the count, the oldest's age, and why the drain is stuck)."""
    count = int(backlog.get("executions") or 0)
    if count == 0:
        return Text("outbox ✓", style="dim")
    limit = backlog.get("limit")
    full = limit is not None and count >= int(limit)
    text = Text(f"outbox {count}" + (f"/{limit}" if full else ""), style="bold red" if full else "bold yellow")
    text.append(f" not in Prefect · oldest {float(backlog.get('oldest_age_s') or 0):.0f}s", style="yellow")
    error = backlog.get("drain_last_error")
    if error and float(backlog.get("oldest_age_s") or 0) >= STUCK_AFTER_SECONDS:  # an old error: not why it waits now
        error = str(error).replace("\n", " ")
        text.append(f" · drain: {error[:ERROR_CHARS]}" + ("…" if len(error) > ERROR_CHARS else ""), style="red")
    return text


@dataclass
class Connection:
    description: str
    last_refresh: datetime | None = None
    lost_since: datetime | None = None
    error: str = ""

    def refreshed(self, moment: datetime) -> None:
        self.last_refresh, self.lost_since, self.error = moment, None, ""

    def lost(self, moment: datetime, error: str) -> None:
        self.lost_since = self.lost_since or moment
        self.error = error


class Header(Static):
    def __init__(self, connection: Connection, *, show_clocks: bool = True, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.connection = connection
        self.show_clocks = show_clocks
        self._drawn: Text | None = None

    def _when(self, moment: datetime | None, precise: bool) -> str:
        if moment is None:
            return "never"
        if not self.show_clocks:
            return "--:--"
        # to the minute while all is well: a refresh every 0.5 s must not redraw the header
        return clock(moment, True) if precise else moment.astimezone().strftime("%H:%M")

    def render_text(
        self, rows: list[ExecutionRow], shown: int, filter_text: str, backlog: dict[str, Any] | None = None
    ) -> Text:
        conn = self.connection
        text = Text()
        if conn.lost_since is not None:
            text.append("◌ reconnecting", style="bold red")
            text.append(f" since {self._when(conn.lost_since, True)}", style="red")
            text.append(f" · last refresh {self._when(conn.last_refresh, True)}", style="red")
        elif conn.last_refresh is None:
            text.append("◌ connecting…", style="yellow")
        else:
            text.append("● connected", style="bold green")
            text.append(f" · refreshed {self._when(conn.last_refresh, False)}", style="dim")
        text.append(f" · {conn.description}", style="dim")
        if backlog is not None:
            text.append(" · ")
            text.append_text(backlog_text(backlog))
        text.append("\n")
        # without clocks (snapshots): "now" is the newest moment the rows know, so it never moves
        moments = [m for r in rows for m in (r.ended_at, r.created_at) if m is not None]
        now = datetime.now(UTC) if self.show_clocks or not moments else max(moments)
        for name, count in counters(rows, now).items():
            style = {"running": "bold yellow", "waiting": "cyan", "failed 1h": "bold red"}[name]
            text.append(f"{name} ", style="dim")
            text.append(f"{count}", style=style if count else "dim")
            text.append("  ")
        text.append("done/min ", style="dim")
        text.append(sparkline(finished_per_minute(rows, now)), style="green")
        text.append(f"  {shown} shown/{len(rows)} · filter {filter_text}", style="dim")
        return text

    def show(
        self, rows: list[ExecutionRow], shown: int, filter_text: str, backlog: dict[str, Any] | None = None
    ) -> None:
        text = self.render_text(rows, shown, filter_text, backlog)
        if self._drawn is None or text.plain != self._drawn.plain or text.spans != self._drawn.spans:
            self._drawn = text
            self.update(text)
