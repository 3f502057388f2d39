"""The virtual clock of workflow tests: waits end at once, and time moves as if they had not.

Each test case has a clock that starts at `VIRTUAL_START` and jumps to a wait's due time when
the wait "ends", so a wait's output is its planned `waited_seconds`, an `until` expression is
compared with the clock, and JSONata's `$now()` / `$millis()` read the clock too: a case
gives the same result on every run and every machine.

The interpreter asks its hooks for the time (`Hooks.now()`: the case's hooks answer this
clock). JSONata reads `Timebox.current_milli_time()`, which has no seam: while `installed()`
is active it reads the clock of the current asyncio task (a context variable), and real
time where no case runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from jsonata import timebox

VIRTUAL_START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # a Thursday, 09:00 UTC


class VirtualClock:
    def __init__(self, start: datetime = VIRTUAL_START) -> None:
        self.now = start

    def advance_to(self, moment: datetime) -> None:
        if moment > self.now:
            self.now = moment


current: ContextVar[VirtualClock | None] = ContextVar("flowdeck_test_clock", default=None)
_real_milli_time = timebox.Timebox.current_milli_time
_installed = 0
_MILLI_TIME = "current_milli_time"  # the name replaced while installed


def _clocked_milli_time() -> int:
    clock = current.get()
    return round(clock.now.timestamp() * 1000) if clock is not None else _real_milli_time()


@contextmanager
def installed() -> Iterator[None]:
    """Route JSONata's clock through `current` (re-entrant)."""
    global _installed
    if _installed == 0:
        setattr(timebox.Timebox, _MILLI_TIME, staticmethod(_clocked_milli_time))
    _installed += 1
    try:
        yield
    finally:
        _installed -= 1
        if _installed == 0:
            setattr(timebox.Timebox, _MILLI_TIME, staticmethod(_real_milli_time))
