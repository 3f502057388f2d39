"""Durations as authors write them (`500ms`, `90s`, `15m`, `2h`, `1d`, or whole seconds).

Definitions store every duration as float seconds so the engine never parses text at run
time. The same grammar is written into `schemas/workflow.schema.json` (DURATION_PATTERN),
so editors and this module agree on what a duration is.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "MAX_DURATION_SECONDS",
    "DurationTooLong",
    "DURATION_PATTERN",
    "DURATION_HINT",
    "WAIT_UNITS",
    "parse_duration",
    "wait_duration_seconds",
    "format_seconds",
]

DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$"
DURATION_HINT = "a duration such as 500ms, 90s, 15m, 2h, 1d, or a whole number of seconds"

# No duration of a workflow (timeout, wait, retry delay) may be longer than a year: longer
# ones are mistakes, and `99999999999999999999d` overflowed datetime arithmetic at run time.
MAX_DURATION_SECONDS = 366 * 86400


class DurationTooLong(ValueError):
    """A well-formed duration over MAX_DURATION_SECONDS."""


def _bounded(seconds: float, value: Any) -> float:
    if not seconds <= MAX_DURATION_SECONDS:  # `not <=` catches inf and nan too
        raise DurationTooLong(
            f"duration {value!r} is longer than {MAX_DURATION_SECONDS // 86400} days, the longest flowdeck accepts"
        )
    return seconds


_SUFFIX_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(DURATION_PATTERN)

# The wait step's `{value, unit}` form, as in the system flowdeck reproduces.
WAIT_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds for `value`; raises ValueError with a message that shows the accepted forms."""
    if isinstance(value, bool):  # bool is an int in Python; `timeout: true` is a mistake
        raise ValueError(f"{value!r} is not a duration; expected {DURATION_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"duration {value} is negative; expected {DURATION_HINT}")
        return _bounded(float(value), value)
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if match:
            suffix = match.group(2)
            return _bounded(float(text[: -len(suffix)]) * _SUFFIX_SECONDS[suffix], value)
    raise ValueError(f"{value!r} is not a duration; expected {DURATION_HINT}")


def wait_duration_seconds(value: Any) -> float:
    """Seconds for a wait step's `duration`: a duration, or `{value: 15, unit: minutes}`.

    In the mapping form `value` defaults to 1 and `unit` to minutes, matching the wait step
    of the system flowdeck reproduces.
    """
    if isinstance(value, dict):
        amount = value.get("value", 1)
        unit = value.get("unit", "minutes")
        if unit not in WAIT_UNITS:
            raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(WAIT_UNITS)}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"wait value {amount!r} must be a number >= 0")
        return _bounded(float(amount) * WAIT_UNITS[unit], value)
    return parse_duration(value)


def format_seconds(seconds: float, *, milliseconds: bool = True, elapsed: bool = False) -> str:
    """The shortest exact duration text for `seconds` (3600 -> '1h', 0.5 -> '500ms').

    `milliseconds=False`: fractions stay seconds (0.5 -> '0.5s'). `elapsed=True`: a measured
    time, rounded for a clock-like column ('2.35s', '12.3s', '4m05s', '1h02m').
    """
    if elapsed:
        return _format_elapsed(seconds)
    if seconds == 0:
        return "0s"
    for suffix in ("d", "h", "m", "s"):
        size = _SUFFIX_SECONDS[suffix]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{suffix}"
    if milliseconds and float(seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


def _format_elapsed(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
