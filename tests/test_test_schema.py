"""The workflow test file schema (`schemas/workflow-test.schema.json`), and hover help in both schemas.

Self-contained: the example test file lives in tests/fixtures_tests/, the broken ones are
built here from it, one mistake each.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
TEST_SCHEMA = ROOT / "schemas" / "workflow-test.schema.json"
WORKFLOW_SCHEMA = ROOT / "schemas" / "workflow.schema.json"
EXAMPLE = ROOT / "tests" / "fixtures_tests" / "lookup_contact.test.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def load_example() -> Any:
    return YAML(typ="safe", pure=True).load(EXAMPLE.read_text())


def errors_of(data: Any) -> list[tuple[str, str]]:
    """(JSON path, validator) of every error, sorted."""
    validator = Draft202012Validator(json.loads(TEST_SCHEMA.read_text()))
    return sorted((error.json_path, error.validator) for error in validator.iter_errors(data))


def test_the_test_schema_is_valid_draft_2020_12():
    schema = json.loads(TEST_SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_the_example_uses_every_key_of_the_format():
    case_keys = set().union(*(case.keys() for case in load_example()["cases"]))
    expect_keys = set().union(*(case.get("expect", {}).keys() for case in load_example()["cases"]))
    schema = json.loads(TEST_SCHEMA.read_text())
    assert set(load_example()) == set(schema["properties"])
    assert case_keys == set(schema["$defs"]["case"]["properties"])
    assert expect_keys == set(schema["$defs"]["expect"]["properties"])


def test_the_example_validates():
    assert errors_of(load_example()) == []


def test_check_jsonschema_accepts_the_example():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(TEST_SCHEMA), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_starts_with_a_modeline_that_finds_the_test_schema():
    match = MODELINE.match(EXAMPLE.read_text().splitlines()[0])
    assert match and (EXAMPLE.parent / match.group(1)).resolve() == TEST_SCHEMA


def _set(path: tuple, value: Any):
    def apply(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _delete(path: tuple):
    def apply(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return apply


BROKEN = {
    # name: (mutation of the example, the errors it must cause)
    "no cases": (_delete(("cases",)), [("$", "required")]),
    "empty cases": (_set(("cases",), []), [("$.cases", "minItems")]),
    "unknown top-level key": (_set(("tests",), []), [("$", "additionalProperties")]),
    "bad workflow id": (_set(("workflow",), "Lookup-Contact"), [("$.workflow", "pattern")]),
    "version newest": (_set(("version",), "newest"), [("$.version", "anyOf")]),
    "version 0": (_set(("version",), 0), [("$.version", "anyOf")]),
    "case without name": (_delete(("cases", 0, "name")), [("$.cases[0]", "required")]),
    "misspelt case key": (_set(("cases", 0, "mock"), {}), [("$.cases[0]", "additionalProperties")]),
    "input not a mapping": (_set(("cases", 0, "input"), "alice"), [("$.cases[0].input", "type")]),
    "trigger without type": (_set(("cases", 1, "trigger"), {"payload": {}}), [("$.cases[1].trigger", "required")]),
    "mock with output and error": (
        _set(("cases", 0, "mocks", "search"), {"output": {}, "error": "down"}),
        [("$.cases[0].mocks.search", "oneOf")],
    ),
    "mock with neither": (_set(("cases", 0, "mocks", "search"), {}), [("$.cases[0].mocks.search", "oneOf")]),
    "mock of a bad step id": (
        _set(("cases", 0, "mocks", "Search CRM"), {"output": None}),
        [("$.cases[0].mocks", "pattern")],
    ),
    "http answer without match": (_delete(("cases", 1, "http", 0, "match")), [("$.cases[1].http[0]", "required")]),
    "lower case method": (
        _set(("cases", 1, "http", 0, "match", "method"), "get"),
        [("$.cases[1].http[0].match.method", "enum")],
    ),
    "json and text": (_set(("cases", 1, "http", 0, "respond", "text"), "[]"), [("$.cases[1].http[0].respond", "not")]),
    "status 1000": (
        _set(("cases", 1, "http", 0, "respond", "status"), 1000),
        [("$.cases[1].http[0].respond.status", "maximum")],
    ),
    "expect status passed": (_set(("cases", 0, "expect", "status"), "passed"), [("$.cases[0].expect.status", "enum")]),
    "misspelt expect key": (
        _set(("cases", 0, "expect", "outputs"), {}),
        [("$.cases[0].expect", "additionalProperties")],
    ),
    "branch taken as a list": (
        _set(("cases", 0, "expect", "branches", "check_match"), ["found"]),
        [("$.cases[0].expect.branches.check_match", "type")],
    ),
    "request without method": (
        _delete(("cases", 1, "expect", "requests", 0, "method")),
        [("$.cases[1].expect.requests[0]", "required")],
    ),
    "error with a step id key": (
        _set(("cases", 2, "expect", "error", "step"), "search"),
        [("$.cases[2].expect.error", "additionalProperties")],
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_test_file_fails(name):
    mutate, expected = BROKEN[name]
    data = copy.deepcopy(load_example())
    mutate(data)
    assert errors_of(data) == expected


# --------------------------------------------------------------------------- hover help


def _properties(node: Any, trail: tuple = ()):
    """(trail, property schema) for every property declared anywhere in a schema."""
    if isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield trail + (name,), child
        for key, child in node.items():
            if key not in ("examples", "default", "const", "enum"):
                yield from _properties(child, trail + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _properties(child, trail + (index,))


@pytest.mark.parametrize("schema_path", [WORKFLOW_SCHEMA, TEST_SCHEMA], ids=lambda path: path.name)
def test_every_property_has_a_description_and_a_markdown_description(schema_path):
    schema = json.loads(schema_path.read_text())
    missing = []
    for trail, child in _properties(schema):
        if "if" in trail:
            continue  # the step type switch, not a field
        for keyword in ("description", "markdownDescription"):
            if not isinstance(child.get(keyword), str) or not child[keyword].strip():
                missing.append(f"{'/'.join(map(str, trail))}: {keyword}")
    assert missing == []
    for name, definition in schema["$defs"].items():
        assert definition.get("description") and definition.get("markdownDescription"), name


@pytest.mark.parametrize("schema_path", [WORKFLOW_SCHEMA, TEST_SCHEMA], ids=lambda path: path.name)
def test_enum_descriptions_match_their_enums(schema_path):
    schema = json.loads(schema_path.read_text())

    def visit(node):
        if isinstance(node, dict):
            if "enum" in node:
                for keyword in ("enumDescriptions", "markdownEnumDescriptions"):
                    if keyword in node:
                        assert len(node[keyword]) == len(node["enum"]), node["enum"]
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(schema)


@pytest.mark.parametrize("schema_path", [WORKFLOW_SCHEMA, TEST_SCHEMA], ids=lambda path: path.name)
def test_defaults_and_examples_are_valid_values(schema_path):
    """A default or an example the schema itself rejects would teach the wrong thing."""
    schema = json.loads(schema_path.read_text())
    checked = 0
    for trail, child in _properties(schema):
        if "if" in trail:
            continue
        values = ([child["default"]] if "default" in child else []) + child.get("examples", [])
        if not values:
            continue
        subschema = {k: v for k, v in child.items() if k not in ("default", "examples")}
        validator = Draft202012Validator({**subschema, "$defs": schema["$defs"]})
        for value in values:
            assert list(validator.iter_errors(value)) == [], ("/".join(map(str, trail)), value)
            checked += 1
    assert checked > 20
