"""JSONata templating: the one expression language of workflow definitions.

A string holding `{{ expr }}` is a template; `expr` is JSONata evaluated against the
execution context `{input, trigger, execution, <step id or name>: output, ...}`.
A string that is exactly one `{{ expr }}` keeps the result's JSON type; text mixed with
expressions becomes a string.

Why the care below: templates run on every execution, in the latency-sensitive sync
mode too, so parsed templates and compiled expressions are cached; and definitions are
written by people, so a runaway expression must fail its step quickly (time, depth and
size bounds) instead of hanging or exhausting the engine. Expressions are JSONata only:
no custom functions are registered, so nothing here can reach Python.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import math
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any, TypeVar

import jsonata
from jsonata.jsonata import Jsonata
from jsonata.parser import Parser
from jsonata.utils import Utils

from flowdeck.definition.expression_limits import (  # the MAX_* bounds: re-exported
    MAX_DEPTH,
    MAX_LIST,
    MAX_RANGE,
    MAX_RENDERED_CHARS,
    MAX_STEPS,
    MAX_STRING,
    Bounds,
    LimitExceeded,
    evaluate_step_bounded,
    install_bounded_functions,
)
from flowdeck.definition.regex import RegexUnsupported, jsonata_regex_engine
from flowdeck.errors import ExpressionError

DEFAULT_TIMEOUT = 1.0  # seconds for one render/evaluate call, all its expressions together
CACHE_SIZE = 4096
# The async entry points evaluate on EVALUATION_THREADS worker threads, never on the event
# loop: one evaluation may take up to its time limit, and the API must keep answering
# (/healthz) meanwhile. The hop costs ~0.1 ms a call.
SWITCH_INTERVAL = 0.0002
EVALUATION_THREADS = 1  # one: a CPU-bound evaluation competes with the loop for the GIL; more would starve it

install_bounded_functions()
_T = TypeVar("_T")

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_DEPTH",
    "MAX_LIST",
    "MAX_RANGE",
    "MAX_STEPS",
    "MAX_STRING",
    "check_syntax",
    "check_template",
    "evaluate",
    "evaluate_async",
    "is_truthy",
    "referenced_roots",
    "render",
    "render_async",
    "template_expressions",
]

_OPEN, _CLOSE = "{{", "}}"
_MAX_SAFE_INT = 2**53


# --------------------------------------------------------------------------- public API


def render(value: Any, ctx: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Render every template inside `value` (nested dicts and lists included).

    Dict keys are left alone. A string without `{{` is returned unchanged; one that is a
    single `{{ expr }}` gives the expression's JSON value (undefined -> None); any other
    template gives a string. All expressions share one time budget of `timeout` seconds.
    """
    if isinstance(value, str) and _OPEN not in value:
        return value  # the common case: no template, no clock to start
    return _render(value, ctx, Bounds(timeout))


def evaluate(expression: str, ctx: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Evaluate one bare expression (a condition's `when`); `{{ }}` around it is optional."""
    return _evaluate(_compile(_strip_braces(expression)), ctx, Bounds(timeout))


async def render_async(value: Any, ctx: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """`render` off the event loop (see EVALUATION_THREADS)."""
    if not any(_OPEN in text for text in _strings_in(value)):
        return _render(value, ctx, Bounds(timeout))  # no template: nothing is evaluated
    return await _off_loop(partial(_render, value, ctx), timeout)


async def evaluate_async(expression: str, ctx: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """`evaluate` off the event loop (see EVALUATION_THREADS)."""
    compiled = _compile(_strip_braces(expression))
    return await _off_loop(partial(_evaluate, compiled, ctx), timeout)


_pool: ThreadPoolExecutor | None = None


async def _off_loop(call: Callable[[Bounds], _T], timeout: float) -> _T:
    global _pool
    if _pool is None:
        # CPython hands the GIL to a waiting thread only after the switch interval (5 ms):
        # the event loop waits that long after every syscall while an evaluation runs, which
        # took /healthz to 25 ms median. At 0.2 ms the loop barely notices the thread.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        _pool = ThreadPoolExecutor(max_workers=EVALUATION_THREADS, thread_name_prefix="flowdeck-expression")
    # The clock starts when a thread takes the evaluation, not while it queues. The caller's
    # context goes along (a workflow test's virtual clock is a context variable).
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _pool, lambda: context.run(call, Bounds(timeout, yielding=True))
    )


def is_truthy(value: Any) -> bool:
    """JSONata's `$boolean` casting: what a condition's result means as true or false."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(is_truthy(item) for item in value)
    if isinstance(value, dict):
        return len(value) > 0
    return False  # functions and anything else JSONata would not call true


def check_syntax(expression: str) -> str | None:
    """None when `expression` (braces optional) parses, else a short message for a person."""
    try:
        _compile(_strip_braces(expression))
    except ExpressionError as error:
        return error.message
    return None


def check_template(text: str) -> str | None:
    """None when every `{{ }}` in `text` is closed and parses, else the first problem."""
    try:
        _parse_template(text)
    except ExpressionError as error:
        return error.message
    return None


def template_expressions(value: Any) -> list[str]:
    """Every expression inside `{{ }}` in `value`: a string, or dicts/lists nesting them.

    Raises ExpressionError for a `{{` that is never closed (validation reports it).
    """
    found: list[str] = []
    for text in _strings_in(value):
        if _OPEN in text:
            found.extend(source for _, source, _ in _split_template(text) if source is not None)
    return found


def referenced_roots(expression: str) -> set[str]:
    """The top-level context names an expression reads, e.g. {"Lookup contact", "input"}.

    Only the first step of each path counts, or a step right after `$$` (or a top-level
    `$`). Variables (`$x`, lambda parameters) and names inside filters are not context
    names. `{{ }}` around the expression is optional. Raises ExpressionError when it
    does not parse.
    """
    roots: set[str] = set()
    _collect_roots(_compile(_strip_braces(expression)).ast, True, roots)
    return roots


# --------------------------------------------------------------------------- templates


def _render(value: Any, ctx: dict[str, Any], bounds: Bounds) -> Any:
    if isinstance(value, str):
        if _OPEN not in value:
            return value
        return _render_template(_parse_template(value), ctx, bounds)
    if isinstance(value, dict):
        return {key: _render(item, ctx, bounds) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render(item, ctx, bounds) for item in value]
    return value


def _render_template(parts: tuple[str | Jsonata, ...], ctx: dict[str, Any], bounds: Bounds) -> Any:
    if len(parts) == 1 and not isinstance(parts[0], str):
        return _produced(_evaluate(parts[0], ctx, bounds), parts[0], bounds)

    def text(part: str | Jsonata) -> str:
        return part if isinstance(part, str) else _produced(_as_text(_evaluate(part, ctx, bounds)), part, bounds)

    return "".join(map(text, parts))


def _produced(value: _T, expression: Jsonata, bounds: Bounds) -> _T:
    """Count what a template gave towards MAX_RENDERED_CHARS (each value is capped, their sum was not)."""
    if isinstance(value, str):
        bounds.produced += len(value)
    elif isinstance(value, (list, dict)):
        bounds.produced += len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    if bounds.produced > MAX_RENDERED_CHARS:
        raise ExpressionError(
            f"expression {_quote(expression)} was stopped: the templates of this step gave more than "
            f"{MAX_RENDERED_CHARS:,} characters (large data belongs in a store the workflow reads)"
        )
    return value


@lru_cache(maxsize=CACHE_SIZE)
def _parse_template(text: str) -> tuple[str | Jsonata, ...]:
    """Literal text and compiled expressions, in order; a pure template is one expression.

    Whitespace around a single `{{ expr }}` is dropped so that it stays pure.
    """
    segments = _split_template(text)
    expressions = [seg for seg in segments if seg[1] is not None]
    if len(expressions) == 1 and all(seg[0].strip() == "" for seg in segments if seg[1] is None):
        return (_compile(expressions[0][1]),)
    return tuple(
        literal if source is None else _compile(source) for literal, source, _ in segments if literal or source
    )


def _split_template(text: str) -> list[tuple[str, str | None, int]]:
    """Split into (literal, None, pos) and ("", expression, pos) segments.

    The closing `}}` is found by scanning the expression: braces of JSONata object
    constructors, string literals and comments are skipped, so `{{ {"a": {"b": 1}} }}`
    works.
    """
    segments: list[tuple[str, str | None, int]] = []
    position = 0
    while True:
        start = text.find(_OPEN, position)
        if start < 0:
            if position < len(text):
                segments.append((text[position:], None, position))
            return segments
        if start > position:
            segments.append((text[position:start], None, position))
        end = _find_close(text, start + 2)
        if end < 0:
            raise ExpressionError(
                f"template {_quote(text)} has a '{{{{' at character {start + 1} that is never closed with '}}}}'"
            )
        source = text[start + 2 : end].strip()
        if not source:
            raise ExpressionError(f"template {_quote(text)} has an empty '{{{{ }}}}' at character {start + 1}")
        segments.append(("", source, start))
        position = end + 2


def _find_close(text: str, index: int) -> int:
    depth = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char in "\"'`":
            index = _skip_quoted(text, index)
            continue
        if char == "/" and text.startswith("/*", index):
            close = text.find("*/", index + 2)
            if close < 0:
                return -1
            index = close + 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0 and text.startswith(_CLOSE, index):
                return index
            depth = max(0, depth - 1)
        index += 1
    return -1


def _skip_quoted(text: str, index: int) -> int:
    quote = text[index]
    index += 1
    while index < len(text):
        if text[index] == "\\" and quote != "`":
            index += 2
            continue
        if text[index] == quote:
            return index + 1
        index += 1
    return index


def _strip_braces(expression: str) -> str:
    stripped = expression.strip()
    if stripped.startswith(_OPEN) and stripped.endswith(_CLOSE):
        segments = _split_template(stripped)
        if len(segments) == 1 and segments[0][1] is not None:
            return segments[0][1]
    return stripped


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings_in(item)


# --------------------------------------------------------------------------- evaluation


class _BoundedJsonata(Jsonata):  # type: ignore[misc]  # jsonata-python ships no types: Jsonata is Any
    """Jsonata with RE2 regexes and a smaller range limit: `[1..10000000]` alone takes
    seconds to use."""

    def __init__(self, expression: str) -> None:
        super().__init__(expression, jsonata_regex_engine)

    evaluate_step = evaluate_step_bounded  # MAX_LIST while a path step flattens

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        if isinstance(lhs, int) and isinstance(rhs, int) and rhs - lhs + 1 > MAX_RANGE:
            raise LimitExceeded(f"the range [{lhs}..{rhs}] has more than {MAX_RANGE:,} items")
        return super().evaluate_range_expression(lhs, rhs)


@lru_cache(maxsize=CACHE_SIZE)
def _compile(expression: str) -> Jsonata:
    if not expression.strip():
        raise ExpressionError("an expression is empty; write JSONata there, e.g. input.customer_email")
    try:
        compiled = _BoundedJsonata(expression)
    except jsonata.JException as error:
        raise ExpressionError(f"cannot parse expression {_quote(expression)}: {_describe(error)}") from None
    except RecursionError:
        raise ExpressionError(f"cannot parse expression {_quote(expression)}: it nests too deeply") from None
    except RegexUnsupported as error:
        raise ExpressionError(f"cannot use the regular expression in {_quote(expression)}: {error}") from None
    # ctx holds JSON data already (the engine guarantees it); skipping jsonata's walk
    # over the whole context on every evaluation keeps simple paths cheap.
    compiled.set_validate_input(False)
    compiled._flowdeck_source = expression
    return compiled


def _evaluate(compiled: Jsonata, ctx: dict[str, Any], bounds: Bounds) -> Any:
    # jsonata keeps per-evaluation state (input, environment, timestamp for $now) on the
    # instance that is "current" for the thread; a shallow copy per call keeps cached
    # instances safe across threads and makes $now() the time of this evaluation.
    instance = copy.copy(compiled)
    Jsonata.CURRENT.jsonata = instance
    try:
        result = instance.evaluate(ctx, bounds.bindings)
    except LimitExceeded as error:
        raise ExpressionError(f"expression {_quote(compiled)} was stopped: {error}") from None
    except jsonata.JException as error:
        raise ExpressionError(f"expression {_quote(compiled)} failed: {_describe(error)}") from None
    except RecursionError:
        raise ExpressionError(f"expression {_quote(compiled)} was stopped: it nests too deeply") from None
    except MemoryError:
        raise ExpressionError(f"expression {_quote(compiled)} was stopped: it ran out of memory") from None
    except Exception as error:  # jsonata-python raises plain Python errors for some bad input
        raise ExpressionError(f"expression {_quote(compiled)} failed: {type(error).__name__}: {error}") from None
    return _to_json(result)


def _to_json(value: Any) -> Any:
    """Plain JSON-serialisable Python: lists for jsonata's sequences, int for integral
    floats, None for functions and undefined. Always copies, so results never alias ctx."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _MAX_SAFE_INT:
            return int(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if value is Utils.NULL_VALUE:
        return None
    return None  # a function value (lambda or built-in) has no JSON form


def _as_text(value: Any) -> str:
    """How a value reads when mixed into text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _number_text(value: float) -> str:
    # JSONata prints numbers with 15 significant digits: 0.1 + 0.2 reads "0.3".
    rounded = float(f"{value:.15g}")
    if rounded.is_integer() and abs(rounded) < _MAX_SAFE_INT:
        return str(int(rounded))
    return repr(rounded)


def _describe(error: jsonata.JException) -> str:
    message = str(error)
    location = getattr(error, "location", -1)
    if isinstance(location, int) and location > 0 and "position" not in message:
        message += f" (at character {location})"
    return message


def _quote(expression: str | Jsonata) -> str:
    text = expression if isinstance(expression, str) else _source_of(expression)
    text = " ".join(text.split())
    return f"`{text if len(text) <= 120 else text[:117] + '...'}`"


def _source_of(compiled: Jsonata) -> str:
    return getattr(compiled, "_flowdeck_source", None) or "<expression>"


# --------------------------------------------------------------------------- references

# Attributes of a jsonata AST node that hold child nodes, and whether the context item
# inside them is still the one of the node itself (False: they run per item).
_SAME_CONTEXT = (
    "lhs",
    "lhs_object",
    "rhs",
    "rhs_object",
    "expression",
    "expressions",
    "arguments",
    "procedure",
    "body",
    "condition",
    "then",
    "_else",
    "expr",
)
_ITEM_CONTEXT = ("stages", "predicate", "group", "terms", "update", "delete", "pattern", "rhs_terms")


def _collect_roots(node: Any, at_root: bool, roots: set[str]) -> None:
    if isinstance(node, (list, tuple)):
        for item in node:
            _collect_roots(item, at_root, roots)
        return
    if not isinstance(node, Parser.Symbol):
        return
    kind = node.type
    if kind == "path":
        context_is_root = at_root
        for step in node.steps or ():
            _collect_roots(step, context_is_root, roots)
            # `$$` is always the root; `$` is the current item, the root only at top level
            context_is_root = step.type == "variable" and (step.value == "$" or (step.value == "" and context_is_root))
        for attribute in _ITEM_CONTEXT:
            _collect_roots(getattr(node, attribute, None), False, roots)
        return
    if kind == "name":
        if at_root:
            roots.add(str(node.value))
        for attribute in _ITEM_CONTEXT:
            _collect_roots(getattr(node, attribute, None), False, roots)
        return
    for attribute in _SAME_CONTEXT:
        _collect_roots(getattr(node, attribute, None), at_root, roots)
    for attribute in _ITEM_CONTEXT:
        _collect_roots(getattr(node, attribute, None), False, roots)
