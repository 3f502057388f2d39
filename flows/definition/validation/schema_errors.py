"""The JSON Schema layer: jsonschema's errors rewritten into sentences.

The schema (`schemas/workflow.schema.json`) is the same file editors and CI use; its errors
are translated to name the step and the field, with "did you mean" hints for typos.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from flowdeck.definition.schema import load_schema
from flowdeck.definition.validation.places import (
    KIND_NAMES,
    _describe,
    _did_you_mean,
    _is_step,
    _json_kind,
    _show,
    _subject,
)
from flowdeck.definition.validation.report import Problem
from flowdeck.definition.yaml_source import Position, YamlDocument


@lru_cache(maxsize=1)
def schema_validator() -> Draft202012Validator:
    """The compiled validator for `schemas/workflow.schema.json`, built once per process."""
    return Draft202012Validator(load_schema())


def _schema_problems(document: YamlDocument, path: str) -> list[Problem]:
    problems: dict[tuple[int, int, str], Problem] = {}
    for error in schema_validator().iter_errors(document.data):
        for leaf, fallback in _leaf_errors(error, None):
            for position, message in _translate(leaf, fallback, document):
                key = (position.line, position.col, message)
                problems.setdefault(key, Problem(path, position.line, position.col, "error", message))
    return list(problems.values())


def _leaf_errors(error: ValidationError, fallback: str | None) -> Iterator[tuple[ValidationError, str | None]]:
    """The errors worth showing: inside a oneOf/anyOf, the branch of the value's JSON type.

    jsonschema reports a failed oneOf as one error whose `context` holds every branch's
    errors, mostly "is not of type ..." noise. When exactly one branch accepts the value's
    type, its errors are the real ones; otherwise the schema's `errorMessage` says it best.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        yield error, fallback
        return
    message = fallback or _schema_of(error).get("errorMessage")
    plausible = [errors for errors in _branches(error) if not _rejects_kind(errors)]
    if len(plausible) == 1:
        for sub in plausible[0]:
            yield from _leaf_errors(sub, message)
        return
    yield error, message


def _branches(error: ValidationError) -> list[list[ValidationError]]:
    """A oneOf/anyOf error's sub-errors grouped by the branch that raised them."""
    grouped: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        grouped.setdefault(sub.relative_schema_path[0], []).append(sub)
    return list(grouped.values())


def _rejects_kind(errors: list[ValidationError]) -> bool:
    """True when a branch fails on the value's kind itself (not a string, not "latest"...)."""
    for sub in errors:
        if sub.relative_path:
            continue
        if sub.validator in ("type", "const"):
            return True
        if sub.validator in ("oneOf", "anyOf") and all(_rejects_kind(b) for b in _branches(sub)):
            return True
    return False


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    """The (sub)schema that raised `error`; a boolean schema has no keywords to read."""
    return error.schema if isinstance(error.schema, Mapping) else {}


def _translate(error: ValidationError, fallback: str | None, document: YamlDocument) -> list[tuple[Position, str]]:
    data = document.data
    path = tuple(error.absolute_path)
    value: Any = error.instance  # the YAML value at `path`
    kind = error.validator
    schema = _schema_of(error)
    rule: Any = error.validator_value  # the keyword's value in the schema: a list, a number, ...
    if kind == "required":
        where = _describe(data, path)
        missing = [key for key in rule if key not in value]
        return [(document.position_of(path), f"missing required key '{key}' in {where}") for key in missing]
    if kind == "additionalProperties":
        where = _describe(data, path)
        allowed = list(schema.get("properties", {}))
        found = []
        for key in value:
            if key in allowed:
                continue
            hint = _did_you_mean(key, allowed)
            if not hint and allowed:
                hint = f" (allowed: {', '.join(allowed)})"
            found.append((document.key_position_of(path + (key,)), f"unknown key '{key}' in {where}{hint}"))
        return found
    position = document.position_of(path)
    if kind in ("oneOf", "anyOf") and fallback and isinstance(value, dict) and _is_step(path):
        return [(position, f"{_describe(data, path)} {fallback}")]
    subject = _subject(data, path)
    got = f" (got {_show(value)})"
    if kind in ("enum", "const"):
        options = rule if kind == "enum" else [rule]
        choices = ", ".join(str(option) for option in options)
        hint = _did_you_mean(value, [str(option) for option in options]) if isinstance(value, str) else ""
        if path and path[-1] == "type" and _is_step(path[:-1]):
            where = _describe(data, path[:-1])
            return [(position, f"unknown step type {_show(value)} in {where}{hint}; use one of {choices}")]
        return [(position, f"{subject} must be {'one of ' if len(options) > 1 else ''}{choices}{got}{hint}")]
    if fallback and kind in ("type", "pattern", "minimum", "oneOf", "anyOf", "not"):
        return [(position, f"{subject}: {fallback}{got}")]
    if kind == "type":
        expected: list[str] = rule if isinstance(rule, list) else [rule]  # JSON type names
        wanted = " or ".join(KIND_NAMES.get(name, name) for name in expected)
        return [(position, f"{subject} must be {wanted} (got {_json_kind(value)})")]
    if kind == "pattern":
        pattern_hint = schema.get("patternErrorMessage")
        if pattern_hint:
            return [(position, f"{subject}: {pattern_hint}{got}")]
        return [(position, f"{subject} must match {rule}{got}")]
    if kind in ("minimum", "exclusiveMinimum"):
        return [(position, f"{subject} must be at least {rule}{got}")]
    if kind in ("maximum", "exclusiveMaximum"):
        return [(position, f"{subject} must be at most {rule}{got}")]
    if kind == "minLength":
        return [(position, f"{subject} must not be empty")]
    if kind == "minItems":
        count = rule
        return [(position, f"{subject} needs at least {count} item{'s' if count != 1 else ''}")]
    return [(position, f"{subject}: {fallback or error.message}")]
