"""Bounds on what one JSONata evaluation may build, enforced inside jsonata's built-ins.

jsonata calls flowdeck's hooks around every node it evaluates (`Bounds` below), but
not inside a built-in function: `$pad("", 1000000000)` built a 1 GB string in 5.4 s before
any hook ran, and the library's `$replace` with a literal pattern copies the rest of the
text for every match (quadratic). The built-ins that can build more than their arguments
hold are therefore replaced here, in jsonata's shared function frame (so `$eval` gets them
too), by versions that check the size of the result BEFORE building it and that run in
time linear in their input.

    MAX_STRING   1,000,000 characters in any string an expression builds
    MAX_LIST     1,000,000 items in any array
    MAX_RANGE      100,000 items of one `[a..b]`
    MAX_STEPS    1,000,000 evaluated nodes in one render/evaluate call (a budget that does
                           not depend on the machine's speed, next to the time limit)
    MAX_DEPTH        1,000 nested evaluations (~300 levels of a recursive function), well
                           inside Python's recursion limit
    MAX_RENDERED_CHARS 10 MiB of what the templates of one render call give (as JSON text):
                           a step's fields are its output, kept in the context, the journal
                           and Prefect; 40 templates of `$pad('', 999999)` each under the
                           caps gave an output step a 40 MB output (an http response may be
                           10 MiB)
    MAX_MEMORY_MB      256 growth of the process's resident memory during one call: each
                           string and array is capped, but not how many of them are kept
                           (`$map([1..100000], function($x){ $pad("", 999999) })` held
                           1.6 GB after 1.1 s, when the clock stopped it). Read from
                           /proc/self/statm every 256 steps and after every result of 65,536
                           items or characters; where there is no /proc only the caps apply.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jsonata
from jsonata.functions import Functions
from jsonata.jsonata import Jsonata
from jsonata.utils import Utils

__all__ = [
    "MAX_DEPTH",
    "MAX_LIST",
    "MAX_MEMORY_MB",
    "MAX_RANGE",
    "MAX_RENDERED_CHARS",
    "MAX_STEPS",
    "MAX_STRING",
    "Bounds",
    "LimitExceeded",
    "evaluate_step_bounded",
    "install_bounded_functions",
]

MAX_DEPTH = 1000
MAX_STRING = 1_000_000
MAX_LIST = 1_000_000
MAX_RANGE = 100_000
MAX_STEPS = 1_000_000
MAX_MEMORY_MB = 256
MAX_RENDERED_CHARS = 10 * 1024 * 1024  # what one render call's templates give: an http response's bound
# A statm read costs ~9 us, a step ~2.5 us: every 256 steps is ~1.3 % of a busy evaluation.
# Results of tail calls (a lambda whose body is a call, as in $map) never reach `exit`, so
# the step count is what catches them: 256 steps build at most a few tens of MB of strings.
_SAMPLE_STEPS = 256
_BIG_RESULT = 65_536
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


class LimitExceeded(Exception):
    """Raised from inside jsonata's evaluation when a bound is crossed."""


class Bounds:
    """Deadline, step budget, depth and size limits for one render/evaluate call.

    jsonata calls `entry`/`exit` around every node it evaluates (its Timebox hook); the
    library's own Timebox starts its clock when an expression is compiled, which does
    not work with a cache, so the clock lives here and starts per call. `yielding`: hand
    the GIL over now and then, so an evaluation on a worker thread never keeps the event
    loop waiting for it.
    """

    __slots__ = ("timeout", "deadline", "depth", "steps", "bindings", "yielding", "resident", "produced")

    def __init__(self, timeout: float, *, yielding: bool = False) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.yielding = yielding
        self.depth = 0
        self.steps = 0
        self.resident: int | None = None  # at the first sample: a short evaluation never reads it
        self.produced = 0  # characters the templates of this call gave (MAX_RENDERED_CHARS)
        self.bindings = {"__evaluate_entry": self.entry, "__evaluate_exit": self.exit}

    def entry(self, expr: Any, input: Any, env: Any) -> None:
        self.depth += 1
        self.steps += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded(
                f"it nests deeper than {MAX_DEPTH} levels (endless recursion? give the function a base case)"
            )
        if self.steps > MAX_STEPS:
            raise LimitExceeded(f"it evaluated more than {MAX_STEPS:,} steps (endless loop?)")
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"it ran longer than {self.timeout:g} s (endless loop?)")
        if self.yielding and self.steps % 64 == 0:
            time.sleep(0)  # releases the GIL: the event loop thread runs at once if it waits
        if self.steps % _SAMPLE_STEPS == 0:
            self.check_memory()

    def check_memory(self) -> None:
        resident = _resident_bytes()
        if resident is None:
            return
        if self.resident is None:
            self.resident = resident
        elif resident - self.resident > MAX_MEMORY_MB * 1024 * 1024:
            raise LimitExceeded(f"it took more than {MAX_MEMORY_MB} MB of memory")

    def exit(self, expr: Any, input: Any, env: Any, result: Any) -> None:
        self.depth -= 1
        if isinstance(result, str):
            if len(result) > MAX_STRING:
                raise LimitExceeded(f"it built a string longer than {MAX_STRING:,} characters")
        elif isinstance(result, list) and not isinstance(result, Utils.RangeList):
            if len(result) > MAX_LIST:
                raise LimitExceeded(f"it built an array of more than {MAX_LIST:,} items")
        else:
            return
        if len(result) >= _BIG_RESULT:
            self.check_memory()


def evaluate_step_bounded(self: Any, expr: Any, input: Any, environment: Any, last_step: bool) -> Any:
    """jsonata's `Jsonata.evaluate_step` (jsonata-python 0.7, pinned <0.8 in pyproject) with MAX_LIST checked on what
    the step collects: each item's result is bounded, their sum was not, and no hook sees
    the sum, so `[1..100000].([1..100000])` held 1.6 GB after 1.4 s, when the clock stopped
    it. Bound to `_BoundedJsonata`."""
    if expr.type == "sort":
        return Jsonata.evaluate_step(self, expr, input, environment, last_step)
    result = Utils.create_sequence()
    total = 0  # items the flattening below will hold: checked as each item's result comes
    for item in input:
        res = self.eval(expr, item, environment)
        for stage in expr.stages or ():
            res = self.evaluate_filter(stage.expr, res, environment)
        if res is not None:
            total += len(res) if isinstance(res, list) else 1
            if total > MAX_LIST:
                raise LimitExceeded(f"a path step would build an array of more than {MAX_LIST:,} items")
            result.append(res)
    if last_step and len(result) == 1 and isinstance(result[0], list) and not Utils.is_sequence(result[0]):
        return result[0]
    sequence = Utils.create_sequence()
    for res in result:
        if not isinstance(res, list) or (isinstance(res, Utils.JList) and res.cons):
            sequence.append(res)
        else:
            sequence.extend(res)
    return sequence


def _too_long(what: str, size: int) -> LimitExceeded:
    return LimitExceeded(f"{what} would build a string of {size:,} characters, more than {MAX_STRING:,}")


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return int(value)
    except (OverflowError, ValueError):  # inf, nan: jsonata treats them as no padding
        return None


class _Bounded:
    """Drop-in implementations of the built-ins that can build large results."""

    @staticmethod
    def pad(string: Any, width: Any, char: Any) -> Any:
        size = _number(width)
        if isinstance(string, str) and size is not None and abs(size) > MAX_STRING:
            raise _too_long(f"$pad to width {size:,}", abs(size))
        return Functions.pad(string, width, char)

    @staticmethod
    def join(strs: Any, separator: Any) -> Any:
        if isinstance(strs, list) and strs:
            sep = separator if isinstance(separator, str) else ""
            size = sum(len(item) for item in strs if isinstance(item, str)) + len(sep) * (len(strs) - 1)
            if size > MAX_STRING:
                raise _too_long("$join", size)
        return Functions.join(strs, separator)

    @staticmethod
    def distinct(arr: Any) -> Any:
        """The library compares each item with every kept one (`$distinct` of 100,000 items
        took 43 s inside one call, out of reach of the clock): here each item is keyed once."""
        if not isinstance(arr, list) or len(arr) <= 1:
            return arr
        results = Utils.create_sequence() if isinstance(arr, Utils.JList) else []
        seen: set[str] = set()
        for item in arr:
            key = _distinct_key(item)
            if key not in seen:
                seen.add(key)
                results.append(item)
        return results

    @staticmethod
    def replace(string: Any, pattern: Any, replacement: Any, limit: Any) -> Any:
        if (
            callable(replacement)
            or not isinstance(string, str)
            or not isinstance(pattern, (str,))
            and not (Functions.is_regex(pattern))
        ):
            return Functions.replace(string, pattern, replacement, limit)
        if isinstance(pattern, str) and not pattern:
            raise jsonata.JException("Second argument of replace function cannot be an empty string", 0)
        if limit is not None and limit < 0:
            raise jsonata.JException("Fourth argument of replace function must evaluate to a positive number", 0)
        template = str(replacement)
        parts: list[str] = []
        size = 0
        position = 0
        for count, (start, end, groups) in enumerate(_matches(string, pattern)):
            if limit is not None and count >= limit:
                break
            piece = string[position:start] + _expand(template, string[start:end], groups)
            size += len(piece)
            if size > MAX_STRING:
                raise _too_long("$replace", size)
            parts.append(piece)
            position = end
        parts.append(string[position:])
        if size + len(string) - position > MAX_STRING:
            raise _too_long("$replace", size + len(string) - position)
        return "".join(parts)


def _distinct_key(item: Any) -> str:
    """Equal JSON values, equal keys: 1 and 1.0 alike, true and 1 not (JSONata's deep equality)."""
    if isinstance(item, bool) or item is None:
        return f"b:{item}"
    if isinstance(item, (int, float)):
        return f"n:{float(item)!r}"
    if isinstance(item, str):
        return "s:" + item
    try:
        return "j:" + json.dumps(item, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        return f"o:{id(item)}"  # a function or other non-JSON value: distinct by identity


def _matches(string: str, pattern: Any) -> Any:
    """(start, end, groups) of each match, left to right, in linear time."""
    if isinstance(pattern, str):
        position = string.find(pattern)
        while position >= 0:
            yield position, position + len(pattern), ()
            position = string.find(pattern, position + len(pattern))
        return
    for match in pattern.finditer(string):
        if match.end() == match.start():
            raise jsonata.JException("D1004", -1)  # JSONata's "matches an empty string"
        yield match.start(), match.end(), match.groups()


def _expand(template: str, whole: str, groups: tuple[Any, ...]) -> str:
    """JSONata's replacement text: `$0` the match, `$N` a group, `$$` a dollar."""
    if "$" not in template:
        return template
    parts: list[str] = []
    position = 0
    digits = len(str(len(groups)))
    while position < len(template):
        index = template.find("$", position)
        if index < 0:
            parts.append(template[position:])
            break
        parts.append(template[position:index])
        position = index + 1
        following = template[position : position + 1]
        if following == "$":
            parts.append("$")
            position += 1
        elif following == "0":
            parts.append(whole)
            position += 1
        elif following.isdigit():
            number = template[position : position + digits]
            while number and not (number.isdigit() and 0 < int(number) <= len(groups)):
                number = number[:-1]
            if number:
                parts.append(groups[int(number) - 1] or "")
                position += len(number)
            else:
                parts.append("$")
        else:
            parts.append("$")
    return "".join(parts)


_SIGNATURES = {"pad": "<s-ns?:s>", "join": "<a<s>s?:s>", "replace": "<s-(sf)(sf)n?:s>", "distinct": "<x:x>"}


def install_bounded_functions() -> None:
    """Rebind $pad, $join, $replace and $distinct in jsonata's static frame (idempotent)."""
    for name, signature in _SIGNATURES.items():
        Jsonata.static_frame.bind(name, Jsonata.function(name, signature, _Bounded, name))
