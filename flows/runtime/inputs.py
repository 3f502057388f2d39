"""Checking input_data against a workflow's input schema before anything starts."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import InvalidInput, StepError


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    import json

    return Draft202012Validator(json.loads(schema_json), format_checker=FormatChecker())


def input_problems(definition: WorkflowDefinition, input_data: Any) -> list[dict[str, str]]:
    """Every way `input_data` breaks the schema, one entry per field."""
    import json

    validator = _validator(json.dumps(definition.input_schema, sort_keys=True))
    problems = []
    for error in sorted(validator.iter_errors(input_data), key=lambda e: list(map(str, e.absolute_path))):
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


def parse_input(text: str | None, source: str = "--input") -> dict[str, Any]:
    """Input JSON from the command line, with a message that says what is wrong."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f'{source} must be a JSON object like \'{{"customer_email": "a@b.c"}}\'')
    return value
