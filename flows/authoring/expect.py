"""A case's `expect` against what happened: one readable sentence (or diff) per broken promise."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from flowdeck.authoring.runner import CaseResult

NO_MOCK_HINT = "answer it in the case's `http`, mock the step by id, or run with --allow-network"


def failures(expect: dict[str, Any], result: CaseResult) -> list[str]:
    """Every expectation `result` breaks (empty: the case passes)."""
    if result.outcome is None:
        return [f"the execution did not start: {result.problem}"]
    outcome = result.outcome
    found: list[str] = []
    error_expected = "error" in expect and not _error_failures(expect["error"], outcome.error, outcome.status)
    if result.unmocked and not error_expected:
        found.extend(f"{message} ({NO_MOCK_HINT})" for message in result.unmocked)
    if "status" in expect and expect["status"] != outcome.status:
        found.append(f"status: expected {expect['status']}, happened {outcome.status}{_why(result)}")
    if "output" in expect and expect["output"] != outcome.output:
        found.append("output: expected (-) and happened (+) differ\n" + _diff(expect["output"], outcome.output))
    if "output_includes" in expect:
        missing = list(_not_included(expect["output_includes"], outcome.output, "output"))
        if missing:
            found.append("output_includes: " + "; ".join(missing) + f"\n  the output was {_compact(outcome.output)}")
    if "error" in expect:
        found.extend(_error_failures(expect["error"], outcome.error, outcome.status))
    if "steps" in expect and list(expect["steps"]) != result.steps:
        found.append(f"steps: expected {_ids(expect['steps'])}\n  the steps that ran: {_ids(result.steps)}")
    for condition, branch in (expect.get("branches") or {}).items():
        if condition not in result.branches:
            found.append(f"branches: condition '{condition}' did not run (the steps that ran: {_ids(result.steps)})")
        elif result.branches[condition] != branch:
            found.append(
                f"branches: condition '{condition}' expected {_branch(branch)}, "
                f"took {_branch(result.branches[condition])}"
            )
    if "requests" in expect and list(expect["requests"]) != result.requests:
        found.append("requests: expected (-) and made (+) differ\n" + _diff(expect["requests"], result.requests))
    return found


def _error_failures(expected: dict[str, Any], error: dict[str, str | None] | None, status: str) -> list[str]:
    if error is None:
        return [f"error: expected the execution to fail, but it ended with status {status}"]
    found = []
    if "step_name" in expected and expected["step_name"] != error.get("step_name"):
        found.append(
            f"error: expected step '{expected['step_name']}' to fail, "
            f"'{error.get('step_name')}' failed: {error.get('message')}"
        )
    if "message" in expected:
        try:
            matched = re.search(expected["message"], error.get("message") or "") is not None
        except re.error as problem:
            return [f"error: message {expected['message']!r} is not a regular expression ({problem})"]
        if not matched:
            found.append(
                f"error: message does not match {expected['message']!r}\n  the message was: {error.get('message')}"
            )
    return found


def _why(result: CaseResult) -> str:
    outcome = result.outcome
    if outcome is None or outcome.error:
        return ""  # the report shows the failing step's message
    return f" (output {_compact(outcome.output)})"


def _not_included(expected: Any, actual: Any, where: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, happened {_compact(actual)}"]
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{where}.{key}: missing (expected {_compact(value)})")
            else:
                found.extend(_not_included(value, actual[key], f"{where}.{key}"))
        return found
    if expected != actual:
        return [f"{where}: expected {_compact(expected)}, happened {_compact(actual)}"]
    return []


def _diff(expected: Any, actual: Any) -> str:
    left = json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    right = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    lines = difflib.unified_diff(left, right, "expected", "happened", lineterm="", n=max(len(left), len(right)))
    return "\n".join("  " + line for line in list(lines)[3:])


def _compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 200 else text[:197] + "..."


def _ids(steps: list[str]) -> str:
    return "[" + ", ".join(steps) + "]"


def _branch(name: str | None) -> str:
    return "the default" if name is None else f"'{name}'"
