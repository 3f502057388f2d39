"""Red team on input schemas: a keyword an author writes in good faith that an API caller can
turn into minutes of CPU.

jsonschema checks `uniqueItems` by comparing every item with every other when the items are
objects or arrays (unhashable): 4,000 small objects took 12 s, and 30,000 fit in one 256 KiB
input (~11 minutes), in the API's request handling. Now each item is keyed once (linear).
"""

from __future__ import annotations

import time

import pytest

from flowdeck.definition.input_schema import input_validator

SCHEMA = {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}


def errors(value: object) -> list[str]:
    return [error.message for error in input_validator(SCHEMA).iter_errors(value)]


def test_unique_items_of_30000_objects_is_checked_at_once() -> None:
    started = time.monotonic()
    assert errors({"a": [{"k": index} for index in range(30_000)]}) == []
    assert errors({"a": [[index, "x"] for index in range(30_000)] + [[0, "x"]]}) != []
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "items, unique",
    [
        ([1, 1.0], False),  # JSON Schema: equal numbers
        ([1, True], True),  # a boolean is not a number
        ([0, False], True),
        ([None, False], True),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),  # key order does not matter
        ([[1, 2], [2, 1]], True),  # item order does
        ([{"a": [1.0]}, {"a": [1]}], False),
        (["1", 1], True),
        ([{"a": True}, {"a": 1}], True),
    ],
)
def test_unique_items_keeps_json_schema_equality(items: list[object], unique: bool) -> None:
    assert (errors({"a": items}) == []) is unique, items
