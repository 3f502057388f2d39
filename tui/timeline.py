"""Step bars on one shared time axis: where each step ran within the execution, so retries
(a failed bar, a gap, the next try) and waits (a dotted bar) read at a glance, for sync and
async executions alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from flowdeck.tui.client import StepRow
from flowdeck.tui.format import STATUS_STYLE

__all__ = ["Axis", "axis_of", "bar"]

WAIT_CHAR = "┄"
RUN_CHAR = "━"


@dataclass(frozen=True)
class Axis:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1e-6)

    def column(self, moment: datetime, width: int) -> int:
        offset = (moment - self.start).total_seconds() / self.seconds
        return min(width - 1, max(0, int(offset * width)))


def axis_of(
    steps: list[StepRow], started_at: datetime | None, now: datetime | None, ended_at: datetime | None = None
) -> Axis | None:
    """From the execution's start to the last moment known (`now` for a step still open)."""
    starts = [s.started_at for s in steps if s.started_at is not None]
    if started_at is not None:
        starts.append(started_at)
    if not starts:
        return None
    ends = [s.ended_at or s.started_at for s in steps if (s.ended_at or s.started_at) is not None]
    if now is not None and any(s.started_at is not None and s.ended_at is None for s in steps):
        ends.append(now)
    start = min(starts)
    end = max([start, *[e for e in ends if e is not None]])
    if ended_at is not None:
        end = max(end, ended_at)
    return Axis(start, end)


def bar(step: StepRow, axis: Axis | None, width: int, now: datetime | None) -> Text:
    """One step's bar, `width` cells wide: blank before it started, its span drawn in its
    status colour (dotted while or where it waited)."""
    if axis is None or step.started_at is None or width <= 0:
        return Text(" " * max(width, 0))
    end = step.ended_at or now or step.started_at
    first = axis.column(step.started_at, width)
    last = max(first, axis.column(end, width))
    char = WAIT_CHAR if step.status == "waiting" or step.kind == "wait" else RUN_CHAR
    style = STATUS_STYLE.get(step.status, "")
    text = Text(" " * first)
    text.append(char * (last - first + 1), style=style)
    text.append(" " * (width - last - 1))
    return text
