"""The one validator of a workflow's input schema: self-contained and linear-time.

An input schema is written by a definition's author and applied to what any caller sends,
so three things jsonschema does by default are refused here:

- fetching a `$ref` (a `$ref: http://127.0.0.1:...` was requested at validation and on every
  API call): references resolve only inside the schema itself (a referencing Registry with
  no retrieval), and validation reports any other `$ref` as an error;
- a `$ref` loop (`a -> b -> a` with nothing consumed in between), which recursed until a
  traceback: validation reports it with the loop named;
- backtracking regexes: `pattern` and `patternProperties` match with RE2
  (`flowdeck.definition.regex`), and a pattern RE2 cannot compile is a validation error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry

from flowdeck.definition.regex import RegexUnsupported, compile_pattern, pattern_problem

__all__ = ["SchemaPath", "input_schema_problems", "input_validator"]

SchemaPath = tuple[str | int, ...]

# Keywords whose subschemas apply to the same instance: a `$ref` cycle through only these
# never consumes any input, so it can only recurse forever.
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_SINGLE = ("not", "if", "then", "else")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _search(pattern: str, text: str) -> bool:
    try:
        return compile_pattern(pattern).search(text) is not None
    except RegexUnsupported:
        return False  # validation refuses such a schema; never reached for a loaded definition


def _unique_items(validator: Any, unique: bool, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """jsonschema compares every item with every other when items are objects or arrays: 4,000
    objects took 12 s, 30,000 fit in one input. Here each item is keyed once, with JSON Schema's
    equality (1 == 1.0, true != 1, key order does not matter)."""
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _equality_key(item)
        if key in seen:
            yield ValidationError(f"{_short(instance)} has non-unique elements")
            return
        seen.add(key)


def _equality_key(item: Any) -> Any:
    if isinstance(item, bool) or item is None:
        return ("b", item)  # apart from numbers: True == 1 in Python
    if isinstance(item, dict):
        return ("o", frozenset((key, _equality_key(value)) for key, value in item.items()))
    if isinstance(item, list):
        return ("a", tuple(_equality_key(value) for value in item))
    return item  # str, int, float: Python's equality and hash are JSON Schema's (1 == 1.0)


def _short(instance: Any) -> str:
    text = repr(instance)
    return text if len(text) <= 200 else text[:197] + "..."


# jsonschema leaves `extend` untyped
_Linear = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "uniqueItems": _unique_items},
)


def input_validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator for `schema`: RE2 patterns, no retrieval of `$ref`."""
    return _cached_validator(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=256)
def _cached_validator(schema_json: str) -> Any:
    return _Linear(json.loads(schema_json), format_checker=FormatChecker(), registry=Registry())


def input_schema_problems(schema: Any) -> list[tuple[SchemaPath, str]]:
    """(path inside the schema, message) for each `$ref` and pattern flowdeck refuses."""
    problems: list[tuple[SchemaPath, str]] = []
    nodes = dict(_schemas(schema, ()))
    for path, node in nodes.items():
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = _pointer_path(ref)
            if target is None:
                problems.append(
                    (
                        path + ("$ref",),
                        f"$ref {ref!r} points outside the input schema; references are resolved only "
                        "inside it (write the schema in $defs and use '#/$defs/NAME')",
                    )
                )
            elif target not in nodes:
                problems.append((path + ("$ref",), f"$ref {ref!r} points at nothing in the input schema"))
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                problems.append((path + (keyword,), f"{keyword} is not supported in input schemas; use $ref"))
        pattern = node.get("pattern")
        if isinstance(pattern, str) and (reason := pattern_problem(pattern)) is not None:
            problems.append((path + ("pattern",), f"pattern {pattern!r} cannot be used: {reason}"))
        properties = node.get("patternProperties")
        for key in properties if isinstance(properties, dict) else ():
            if (reason := pattern_problem(key)) is not None:
                problems.append((path + ("patternProperties", key), f"pattern {key!r} cannot be used: {reason}"))
    problems.extend(_ref_loops(nodes))
    return problems


def _schemas(node: Any, path: SchemaPath) -> Iterator[tuple[SchemaPath, dict[str, Any]]]:
    """Every mapping of the schema with its path (mappings that are not schemas do no harm)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in ("enum", "const", "examples", "default"):
                yield from _schemas(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas(value, path + (index,))


def _pointer_path(ref: str) -> SchemaPath | None:
    """The path a local `#/a/0/b` reference names; None for anything else."""
    if ref == "#":
        return ()
    if not ref.startswith("#/"):
        return None
    parts: list[str | int] = []
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


def _in_place(node: dict[str, Any], path: SchemaPath) -> Iterator[SchemaPath]:
    ref = node.get("$ref")
    if isinstance(ref, str) and (target := _pointer_path(ref)) is not None:
        yield target
    for keyword in _IN_PLACE_LISTS:
        members = node.get(keyword)
        for index in range(len(members) if isinstance(members, list) else 0):
            yield path + (keyword, index)
    for keyword in _IN_PLACE_SINGLE:
        if isinstance(node.get(keyword), dict):
            yield path + (keyword,)


def _ref_loops(nodes: dict[SchemaPath, dict[str, Any]]) -> list[tuple[SchemaPath, str]]:
    found: list[tuple[SchemaPath, str]] = []
    reported: set[frozenset[SchemaPath]] = set()
    done: set[SchemaPath] = set()
    for start in nodes:
        stack: list[tuple[SchemaPath, Iterator[SchemaPath]]] = [(start, _in_place(nodes[start], start))]
        on_stack = [start]
        while stack:
            current, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_stack.pop()
                done.add(current)
                continue
            if child in on_stack:
                loop = on_stack[on_stack.index(child) :] + [child]
                key = frozenset(loop)
                if key not in reported:
                    reported.add(key)
                    named = " -> ".join(_pointer(each) for each in loop)
                    found.append(
                        (
                            loop[0] + ("$ref",) if "$ref" in nodes[loop[0]] else loop[0],
                            f"$ref loop {named}: it "
                            "would recurse forever without reading any input; make one of them a real schema",
                        )
                    )
                continue
            if child in done or child not in nodes:
                continue
            stack.append((child, _in_place(nodes[child], child)))
            on_stack.append(child)
    return found


def _pointer(path: SchemaPath) -> str:
    return "#" + "".join(f"/{part}" for part in path)
