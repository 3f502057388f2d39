"""Each input bound at its value and one past it, without a server: the strict parser every
entry point shares (API middleware, CLI --input, validate_input), and input schemas."""

from __future__ import annotations

import json
import time

import pytest

from flowdeck.definition.catalog import build_definition
from flowdeck.definition.regex import MAX_PATTERN_LENGTH, pattern_problem
from flowdeck.definition.validation import check_text
from flowdeck.errors import InvalidInput
from flowdeck.runtime.input_bounds import (
    MAX_INPUT_BYTES,
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    InputTooLarge,
    JsonRefused,
    check_size,
    parse_strict,
)
from flowdeck.runtime.inputs import input_problems, parse_input


def nested_text(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_at_and_past_the_bound():
    assert parse_strict(nested_text(MAX_JSON_DEPTH)) is not None
    with pytest.raises(JsonRefused, match=f"nests deeper than {MAX_JSON_DEPTH} levels") as caught:
        parse_strict(nested_text(MAX_JSON_DEPTH + 1))
    assert not caught.value.malformed
    with pytest.raises(JsonRefused, match="nests deeper"):
        parse_strict(nested_text(100_000))  # RecursionError inside json, never escaping


def test_number_length_and_integer_range_at_the_bound():
    with pytest.raises(JsonRefused, match=f"longer than {MAX_NUMBER_CHARS}"):
        parse_strict("1" * (MAX_NUMBER_CHARS + 1))
    assert parse_strict(str(2**64 - 1)) == 2**64 - 1 and parse_strict(str(-(2**63))) == -(2**63)
    for outside in (2**64, -(2**63) - 1):
        with pytest.raises(JsonRefused, match="does not fit in 64 bits"):
            parse_strict(str(outside))


def test_number_at_the_length_bound_is_accepted_only_when_in_range():
    with pytest.raises(JsonRefused, match="64 bits"):
        parse_strict("1" * MAX_NUMBER_CHARS)  # 100 digits: the length is fine, the range is not
    assert parse_strict("0." + "1" * (MAX_NUMBER_CHARS - 2)) == pytest.approx(1 / 9)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_malformed(literal):
    with pytest.raises(JsonRefused) as caught:
        parse_strict(f'{{"x": {literal}}}')
    assert caught.value.malformed


def test_lone_surrogates_in_keys_and_values_name_the_field():
    with pytest.raises(JsonRefused, match="lone surrogate") as caught:
        parse_strict('{"a": {"b": ["ok", "\\udc00"]}}')
    assert caught.value.where == "a.b[1]"
    with pytest.raises(JsonRefused, match="lone surrogate"):
        parse_strict('{"\\ud800": 1}')
    assert parse_strict('{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}  # a pair is fine


def test_invalid_utf8_is_malformed():
    with pytest.raises(JsonRefused, match="not UTF-8 text .invalid byte at offset 6") as caught:
        parse_strict(b'{"a": \xff}')
    assert caught.value.malformed


def test_size_at_and_past_the_bound_counts_like_prefect():
    overhead = len(json.dumps({"s": ""}, separators=(",", ":")))
    check_size({"s": "x" * (MAX_INPUT_BYTES - overhead)}, "input_data")
    with pytest.raises(InputTooLarge):
        check_size({"s": "x" * (MAX_INPUT_BYTES - overhead + 1)}, "input_data")
    # non-ASCII counts as Prefect counts it (escaped: 6 bytes a character)
    with pytest.raises(InputTooLarge):
        check_size({"s": "é" * (MAX_INPUT_BYTES // 6 + 1)}, "input_data")


def test_cli_parse_input_says_what_and_where():
    with pytest.raises(InvalidInput, match="--input: NaN is not JSON"):
        parse_input('{"x": NaN}')
    with pytest.raises(InvalidInput, match="--input-file f.json is not UTF-8"):
        parse_input(b'{"x": "\xc3\x28"}', "--input-file f.json")


SCHEMA_FILE = """id: pat
version: 1
input:
  type: object
  properties:
    s: {type: string, pattern: "^(a+)+$"}
    t: {$ref: "#/$defs/t"}
  $defs:
    t: {type: integer}
steps: [{id: done, type: output}]
"""


def test_input_schema_patterns_match_in_linear_time_at_run_time():
    definition = build_definition(check_text(SCHEMA_FILE, "pat.yaml"))
    started = time.monotonic()
    problems = input_problems(definition, {"s": "a" * 100_000 + "!", "t": "x"})
    assert time.monotonic() - started < 0.5
    assert [p["field"] for p in problems] == ["s", "t"]


def test_input_over_the_bounds_never_reaches_the_schema_validator():
    definition = build_definition(check_text(SCHEMA_FILE, "pat.yaml"))
    deep: dict[str, object] = {}
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = {"a": deep}
    assert "nests deeper" in input_problems(definition, deep)[0]["message"]


def test_pattern_length_bound():
    assert pattern_problem("a" * MAX_PATTERN_LENGTH) is None
    assert "longer than" in (pattern_problem("a" * (MAX_PATTERN_LENGTH + 1)) or "")
