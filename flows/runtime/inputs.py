"""Checking input_data against a workflow's input schema before anything starts."""

from __future__ import annotations

from typing import Any

from flowdeck.definition.input_schema import input_validator
from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import InvalidInput, StepError
from flowdeck.runtime.input_bounds import JsonRefused, check_size, check_value, parse_strict


def input_problems(definition: WorkflowDefinition, input_data: Any) -> list[dict[str, str]]:
    """Every way `input_data` breaks the bounds (input_bounds) or the schema, one entry per field.

    The bounds come first: a value over them never reaches the schema validator (a deep
    value would recurse in it) nor Prefect.
    """
    try:
        check_value(input_data, "")
        check_size(input_data, "input_data")
    except JsonRefused as refused:
        return [{"field": refused.where or "(input)", "message": refused.message}]
    validator = input_validator(definition.input_schema)
    try:
        errors = list(validator.iter_errors(input_data))
    except RecursionError:  # validation refuses $ref loops; this is the last line of defence
        return [{"field": "(input)", "message": "the input schema recurses without end; run `flowdeck validate`"}]
    problems = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = ".".join(filter(None, [path, missing]))
            message = "is required"
        else:
            message = error.message
        problems.append({"field": path or "(input)", "message": message})
    return problems


def validate_input(definition: WorkflowDefinition, input_data: Any, *, as_step: bool = False) -> None:
    problems = input_problems(definition, input_data)
    if not problems:
        return
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    message = f"input_data is not valid for workflow '{definition.key}': {listed}"
    if as_step:
        raise StepError(message)
    raise InvalidInput(message, details=problems)


def parse_input(text: str | bytes | None, source: str = "--input") -> dict[str, Any]:
    """Input JSON from the command line (text, or a file's bytes), within the bounds of
    `input_bounds`, with a message that says what is wrong."""
    if text is None or not text.strip():
        return {}
    try:
        value = parse_strict(text, source)
        if isinstance(value, dict):
            check_size(value, source)
    except JsonRefused as error:
        raise InvalidInput(
            error.message if error.message.startswith(source) else f"{source}: {error.message}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f'{source} must be a JSON object like \'{{"customer_email": "a@b.c"}}\'')
    return value
