"""The error classes say how every surface answers them, and flowdeck.errors draws them all."""

from __future__ import annotations

import re

import pytest
from support.paths import ROOT

import flowdeck.api.auth  # noqa: F401  (defines NoTokens, drawn in the tree too)
import flowdeck.runtime.sandbox.launcher  # noqa: F401  (defines SandboxUnavailable)
from flowdeck import errors

pytestmark = pytest.mark.fast


def _all_errors() -> set[type[errors.FlowdeckError]]:
    found: set[type[errors.FlowdeckError]] = set()
    pending = [errors.FlowdeckError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def _defined_in_source() -> set[str]:
    """Every subclass of FlowdeckError the engine and the dashboard define (read from source,
    so the answer does not depend on what this test session happened to import)."""
    bases: dict[str, str] = {}
    for path in [*(ROOT / "flows").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]:
        for name, base in re.findall(r"^class (\w+)\((?:\w+\.)*(\w+)\):", path.read_text(), re.M):
            bases[name] = base
    found = {"FlowdeckError"}
    while True:
        more = {name for name, base in bases.items() if base in found} - found
        if not more:
            return found
        found |= more


def _drawn() -> dict[str, tuple[int, int, str, int]]:
    """class name -> (exit code, HTTP status, code, depth) as the module docstring draws it."""
    rows = {}
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^    ([│├└─ ]*)([A-Z]\w+)\s+(\d)\s+(\d{3})\s+(\w+)", line)
        if match:
            rows[match[2]] = (int(match[3]), int(match[4]), match[5], len(match[1]) // 4)
    return rows


def test_the_docstring_draws_every_error_class_with_its_attributes() -> None:
    drawn = _drawn()
    classes = {cls.__name__: cls for cls in _all_errors()}
    assert set(drawn) == set(classes) == _defined_in_source()
    for name, (exit_code, http_status, code, _depth) in drawn.items():
        cls = classes[name]
        assert (cls.exit_code, cls.http_status, cls.code) == (exit_code, http_status, code), name


def test_the_tree_is_the_class_hierarchy() -> None:
    parents: list[str] = []
    classes = {cls.__name__: cls for cls in _all_errors()}
    for name, (*_, depth) in _drawn().items():
        del parents[depth:]
        if parents:
            assert classes[name].__bases__ == (classes[parents[-1]],), name
        parents.append(name)


@pytest.mark.parametrize(
    ("error", "exit_code", "http_status"),
    [
        (errors.UnknownWorkflow, 2, 404),
        (errors.UnknownExecution, 2, 404),
        (errors.InvalidInput, 2, 422),
        (errors.NotRunnable, 2, 422),
        (errors.ConfigurationError, 2, 409),
        (errors.AlreadyEnded, 1, 409),
        (errors.PrefectUnavailable, 3, 503),
        (errors.ExpressionError, 1, 409),
    ],
)
def test_exit_codes_and_statuses(error: type[errors.FlowdeckError], exit_code: int, http_status: int) -> None:
    assert (error.exit_code, error.http_status) == (exit_code, http_status)
