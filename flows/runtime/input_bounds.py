"""Strict, bounded JSON for everything a caller sends: checked before anything reaches Prefect.

Prefect stores an execution's input in the flow run's parameters. What Python's `json`
accepts but Prefect cannot hold broke far more than the one request: input nested 900
levels was stored, and then every `POST /flow_runs/filter` answered 500 (orjson, which
Prefect serialises with, stops at 255 levels and at 64-bit integers), so recovery and
listing failed for every execution. Hence, for input_data, webhook bodies and `--input`:

    MAX_JSON_DEPTH        64 levels of objects and arrays in one input
    MAX_INPUT_BYTES      256 KiB of one input as compact JSON (ASCII-escaped, the way Prefect
                         measures it against its 512 KiB parameter limit: half of it, so the
                         rest of the run's parameters always fit)
    MAX_WEBHOOK_BYTES    128 KiB of a webhook body (stored twice: as trigger payload and input)
    MAX_NUMBER_CHARS     100 characters of one number literal
    integers             within 64 bits (-2**63 .. 2**64-1); larger ones as strings

and strict JSON: `NaN`, `Infinity`, numbers that overflow to infinity (`1e999`), text that
is not UTF-8, and lone surrogates (`"\\ud800"`, which no UTF-8 store can hold) are refused.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_WEBHOOK_BYTES",
    "InputTooLarge",
    "JsonRefused",
    "check_size",
    "check_value",
    "encoded_size",
    "loads_strict",
    "parse_strict",
]

MAX_JSON_DEPTH = 64
MAX_INPUT_BYTES = 256 * 1024
MAX_WEBHOOK_BYTES = 128 * 1024
MAX_NUMBER_CHARS = 100
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


class JsonRefused(ValueError):
    """Not strict JSON (`malformed`: not JSON at all) or breaks a bound; `where` names the place."""

    def __init__(self, message: str, where: str = "", *, malformed: bool = False, syntax: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.malformed = malformed or syntax
        self.syntax = syntax  # not JSON text at all (cut short, a typo), rather than JSON outside the bounds


class InputTooLarge(JsonRefused):
    """An input over MAX_INPUT_BYTES (or a webhook body over MAX_WEBHOOK_BYTES)."""

    def __init__(self, message: str, where: str, limit: int) -> None:
        super().__init__(message, where)
        self.limit = limit


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON; send numbers as finite numbers or as strings", malformed=True)


def _number_text(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonRefused(
            f"a number of {len(text):,} characters is longer than {MAX_NUMBER_CHARS}; send it as a string",
            malformed=True,
        )


def _parse_int(text: str) -> int:
    _number_text(text)
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise JsonRefused(f"the integer {text} does not fit in 64 bits; send it as a string", malformed=True)
    return value


def _parse_float(text: str) -> float:
    _number_text(text)
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text} is too large for a 64-bit float; send it as a string", malformed=True)
    return value


def parse_strict(raw: bytes | str, what: str = "the body", *, extra_depth: int = 0) -> Any:
    """Parse `raw` as strict JSON within MAX_JSON_DEPTH (+ `extra_depth` levels of an
    enclosing request body).

    Raises JsonRefused with a message that says what is wrong and where.
    """
    value = loads_strict(raw, what)
    check_value(value, "", extra_depth=extra_depth)
    return value


def loads_strict(raw: bytes | str, what: str = "the body") -> Any:
    """`parse_strict` without the walk over the value (for a caller that checks parts of it
    itself, e.g. a code step's reply): strict numbers and text, no RecursionError."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonRefused(
                f"{what} is not UTF-8 text (invalid byte at offset {error.start}); send JSON encoded as UTF-8",
                malformed=True,
            ) from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as error:
        raise JsonRefused(
            f"{what} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}", syntax=True
        ) from None
    except RecursionError:
        raise JsonRefused(f"{what} nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays") from None
    return value


def check_value(value: Any, where: str, *, extra_depth: int = 0) -> None:
    """Depth, text and numbers of an already parsed value (iterative: any depth is safe to walk)."""
    limit = MAX_JSON_DEPTH + extra_depth
    found = _find_problem(value, limit)
    if found is not None:
        # Only the container that holds the problem pays for the walk that names the place:
        # building a path string for each of the 5.5 million values of a 16 MiB batch took 3-4 s.
        item, trail, depth = found
        path = _path(where, trail)
        _name_problem(item, path, limit - depth)
        raise JsonRefused(f"{path or 'the value'} is outside the bounds of an input", path)  # not reached


def _name_problem(value: Any, where: str, limit: int) -> None:
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth + 1 > limit:
                raise JsonRefused(f"{path or 'the value'} nests deeper than {MAX_JSON_DEPTH} levels", path)
            for key, child in item.items():
                _check_text(key, f"{path}.{key}" if path else str(key))
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, list):
            if depth + 1 > limit:
                raise JsonRefused(f"{path or 'the value'} nests deeper than {MAX_JSON_DEPTH} levels", path)
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            # a value built in Python (a facade caller, a code step) never went through the parser
            raise JsonRefused(f"{path or 'the value'} is {item}, which is not JSON; send a finite number", path)
        elif isinstance(item, int) and not isinstance(item, bool) and not _INT_MIN <= item <= _INT_MAX:
            raise JsonRefused(f"{path or 'the value'} is an integer that does not fit in 64 bits", path)


def _find_problem(value: Any, limit: int) -> tuple[Any, Any, int] | None:
    """(the container holding what breaks a bound, its trail, its depth), or None: one pass
    that builds no strings. A trail is (parent trail, key, is_index), rendered only on failure."""
    if not isinstance(value, (dict, list)):
        return None if _fine_scalar(value) else (value, None, 0)
    stack: list[tuple[Any, Any, int]] = [(value, None, 0)]  # containers within the limit themselves
    while stack:
        item, trail, depth = stack.pop()
        deeper = depth + 2 > limit  # a container among the children would break the bound
        if isinstance(item, dict):
            if not all(map(_fine_scalar, item)):
                return item, trail, depth
            pairs: Any = item.items()
            is_index = False
        else:
            pairs = enumerate(item)
            is_index = True
        for key, child in pairs:
            if isinstance(child, (dict, list)):
                if deeper:
                    return item, trail, depth
                if child:
                    stack.append((child, (trail, key, is_index), depth + 1))
            elif not _fine_scalar(child):
                return item, trail, depth
    return None


def _path(where: str, trail: Any) -> str:
    keys: list[tuple[Any, bool]] = []
    while trail is not None:
        trail, key, is_index = trail
        keys.append((key, is_index))
    path = where
    for key, is_index in reversed(keys):
        path = f"{path}[{key}]" if is_index else (f"{path}.{key}" if path else str(key))
    return path


def _fine_scalar(item: Any) -> bool:
    if isinstance(item, str):
        return item.isascii() or _is_unicode(item)
    if isinstance(item, float):
        return math.isfinite(item)
    if isinstance(item, int):
        return _INT_MIN <= item <= _INT_MAX  # bools are 0 and 1
    return True


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(text: str, path: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise JsonRefused(
                f"{path or 'a string'} holds a lone surrogate (\\u{ord(text[error.start]):04x}), "
                "which is not Unicode text",
                path,
            ) from None


def encoded_size(value: Any) -> int:
    """Bytes of `value` as Prefect measures parameters: compact, ASCII-escaped JSON."""
    return len(json.dumps(value, separators=(",", ":")))


def check_size(value: Any, where: str, limit: int = MAX_INPUT_BYTES) -> None:
    size = encoded_size(value)
    if size > limit:
        raise InputTooLarge(
            f"{where} is {size:,} bytes as JSON, over the limit of {limit // 1024} KiB "
            "(large data belongs in a store the workflow reads, not in the input)",
            where,
            limit,
        )
