"""How values look on screen: statuses, times, durations, ids. `CLOCKS` hides every
wall-clock value (snapshot tests turn it off so screenshots never change)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from flowdeck.definition.durations import format_seconds

__all__ = ["status_text", "clock", "duration", "countdown", "short_id", "pretty_json"]

STATUS_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "waiting": "cyan",
    "success": "green",
    "failed": "bold red",
    "cancelled": "magenta",
}
STATUS_ICON = {
    "pending": "…",
    "running": "▶",
    "waiting": "⏸",
    "success": "✓",
    "failed": "✗",
    "cancelled": "⊘",
}


def status_text(status: str) -> Text:
    return Text(f"{STATUS_ICON.get(status, '?')} {status}", style=STATUS_STYLE.get(status, ""))


def clock(moment: datetime | None, show: bool) -> str:
    if moment is None:
        return "-"
    if not show:
        return "--:--:--"
    return moment.astimezone().strftime("%H:%M:%S")


def duration(start: datetime | None, end: datetime | None, show: bool, now: datetime | None = None) -> str:
    if start is None:
        return "-"
    if not show and end is None:  # still growing: a wall-clock value (an ended span is fixed)
        return "--"
    seconds = ((end or now or datetime.now(UTC)) - start).total_seconds()
    return format_seconds(seconds, elapsed=True)


def countdown(due: datetime | None, show: bool) -> str:
    if due is None:
        return ""
    if not show:
        return "resumes in --"
    # rounded up: a 1 s tick that drifts never shows the same second twice or skips one
    seconds = math.ceil((due - datetime.now(UTC)).total_seconds() - 0.05)
    if seconds <= 0:
        return "resuming now"
    return f"resumes in {seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def short_id(execution_id: str, wide: bool) -> str:
    return execution_id if wide else execution_id[:13]


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
