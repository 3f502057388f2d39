"""The action step: call a Python function installed with the engine, by reference.

`uses: "package.module:function"` names trusted code deployed alongside flowdeck (unlike
code steps, which are sandboxed). Imports are cached because the same actions run on
every execution; sync functions run in a thread so they cannot stall the event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

from flowdeck.errors import StepError

_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_resolved: dict[str, Callable[..., Any]] = {}


def check_action_reference(uses: str) -> str | None:
    """None when `uses` looks like "package.module:function" (nothing is imported)."""
    if not isinstance(uses, str) or not _REFERENCE.match(uses):
        return f"uses {uses!r} must name a function as 'package.module:function'"
    return None


async def run_action(uses: str, kwargs: dict[str, Any]) -> Any:
    """Call the function `uses` names with `kwargs`; return its JSON-serialisable result."""
    function = _resolve(uses)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise StepError(f"action {uses}: 'with' must be a mapping of argument names to values")
    arguments = kwargs or {}
    try:
        if inspect.iscoroutinefunction(function):
            result = await function(**arguments)
        else:
            result = await asyncio.to_thread(function, **arguments)
            if inspect.isawaitable(result):  # a sync wrapper that returns a coroutine
                result = await result
    except TypeError as error:
        if _is_signature_mismatch(function, arguments):
            raise StepError(f"action {uses} does not accept these arguments ({error}); check its 'with'") from None
        raise StepError(f"action {uses} raised TypeError: {error}") from None
    except Exception as error:
        raise StepError(f"action {uses} raised {type(error).__name__}: {error}") from None
    return _as_json(result, uses)


def _resolve(uses: str) -> Callable[..., Any]:
    cached = _resolved.get(uses)
    if cached is not None:
        return cached
    problem = check_action_reference(uses)
    if problem:
        raise StepError(problem)
    module_name, _, attribute = uses.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise StepError(
            f"action {uses}: cannot import module '{module_name}' ({error}); is it installed next to flowdeck?"
        ) from None
    except Exception as error:
        raise StepError(
            f"action {uses}: importing module '{module_name}' failed with {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise StepError(f"action {uses}: module '{module_name}' has no attribute '{attribute}'")
    if not callable(function):
        raise StepError(f"action {uses}: '{attribute}' in '{module_name}' is not a function")
    action: Callable[..., Any] = function
    _resolved[uses] = action
    return action


def _is_signature_mismatch(function: Callable[..., Any], arguments: dict[str, Any]) -> bool:
    try:
        inspect.signature(function).bind(**arguments)
    except TypeError:
        return True
    except ValueError:  # no signature available (some builtins)
        return False
    return False


def _as_json(result: Any, uses: str) -> Any:
    """A plain JSON copy (tuples become lists): the output is stored and rendered later."""
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise StepError(
            f"action {uses} returned a {type(result).__name__} that is not JSON-serialisable ({error}); "
            "return dicts, lists, strings, numbers, booleans or None"
        ) from None
