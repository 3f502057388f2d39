"""The JSON Schema works outside flowdeck: in check-jsonschema (CI) and for editors (modeline)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from support.paths import EXAMPLE_DEFINITIONS

from flowdeck.definition.durations import DURATION_PATTERN

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "workflow.schema.json"
# workflow versions only: *.test.yaml files are workflow tests, checked against their own schema
EXAMPLES = sorted(p for p in EXAMPLE_DEFINITIONS.rglob("*.yaml") if not p.name.endswith(".test.yaml"))
BROKEN = sorted((ROOT / "tests" / "fixtures" / "broken").glob("*.yaml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def run_check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_there_are_examples_and_broken_fixtures():
    assert len(EXAMPLES) >= 4 and BROKEN


def test_the_schema_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_check_jsonschema_accepts_the_examples():
    result = run_check_jsonschema(*EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("broken", BROKEN, ids=lambda path: path.name)
def test_check_jsonschema_rejects_a_broken_definition(broken):
    result = run_check_jsonschema(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout


def test_check_jsonschema_names_the_typo():
    result = run_check_jsonschema(ROOT / "tests" / "fixtures" / "broken" / "http_typo.yaml")
    assert "'mehtod' was unexpected" in result.stdout and "'url' is a required property" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_jsonschema_library_accepts_each_example(example):
    data = YAML(typ="safe", pure=True).load(example.read_text())
    errors = [error.message for error in Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("example", EXAMPLES + BROKEN, ids=lambda path: path.stem)
def test_every_file_starts_with_a_modeline_that_finds_the_schema(example):
    match = MODELINE.match(example.read_text().splitlines()[0])
    assert match, f"{example} does not start with the yaml-language-server modeline"
    assert (example.parent / match.group(1)).resolve() == SCHEMA


def test_the_duration_pattern_matches_flowdeck():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$defs"]["duration"]["oneOf"][0]["pattern"] == DURATION_PATTERN


def _properties(node, trail=()):
    """(trail, property schema) for every property declared anywhere in the schema."""
    if isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield trail + (name,), child
        for key, child in node.items():
            yield from _properties(child, trail + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _properties(child, trail + (index,))


def test_every_field_has_hover_help():
    schema = json.loads(SCHEMA.read_text())
    missing = []
    for trail, child in _properties(schema):
        if "if" in trail:
            continue  # the type switch, not a field
        described = "description" in child or "$ref" in child or "const" in child
        if not described:
            missing.append("/".join(map(str, trail)))
    assert missing == []
