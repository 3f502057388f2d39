"""Workflow test files (`*.test.yaml`): found, bounded, checked against their schema, loaded.

A test file is read with the definitions' own YAML loader (positions for every value,
duplicate keys refused) and checked against `schemas/workflow-test.schema.json`, the file
editors use, so a problem reads `PATH:LINE:COL: error: MESSAGE` like a definition's. What
is read is bounded before it is parsed: the file's size, how deeply it nests, how many
cases it holds.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from flowdeck.definition.schema import load_schema
from flowdeck.definition.validation.files import TEST_FILE_SUFFIXES
from flowdeck.definition.validation.places import KIND_NAMES
from flowdeck.definition.validation.report import Problem
from flowdeck.definition.yaml_source import DataPath, Position, YamlDocument, YamlSyntaxError, parse_yaml

TEST_SCHEMA = "workflow-test.schema.json"
MAX_FILE_BYTES = 1_000_000  # a test file is written by hand: a megabyte is far beyond any real one
MAX_DEPTH = 40  # nested mappings and lists, the document root included
MAX_CASES = 1_000


@dataclass(frozen=True)
class Mock:
    """A step that does not run: it gives `output`, or fails with `error`."""

    output: Any = None
    error: str | None = None
    line: int = 1


@dataclass(frozen=True)
class HttpAnswer:
    """A canned answer for requests matching `method` (None: any) and the fnmatch `url`."""

    url: str
    method: str | None
    status: int
    headers: dict[str, str]
    json: Any = None
    has_json: bool = False
    text: str | None = None


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class

    name: str
    line: int
    input: dict[str, Any]
    trigger: dict[str, Any]
    mocks: dict[str, Mock]
    http: tuple[HttpAnswer, ...]
    expect: dict[str, Any]


@dataclass(frozen=True)
class TestFile:
    __test__ = False  # not a pytest class

    path: str
    workflow: str
    version: str | int
    cases: tuple[TestCase, ...]
    document: YamlDocument = field(repr=False, compare=False)

    def position_of(self, path: DataPath) -> Position:
        return self.document.position_of(path)


class TestFileInvalid(Exception):
    """The file does not load; `problems` say where and why."""

    __test__ = False  # not a pytest class

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def is_test_file(path: str | Path) -> bool:
    return Path(path).name.endswith(TEST_FILE_SUFFIXES)


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """`*.test.yaml` files under `paths` (files as given); hidden folders skipped; sorted."""
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        candidates: Iterator[Path] = path.rglob("*") if path.is_dir() else iter([path])
        for candidate in candidates:
            relative = candidate.relative_to(path).parts if path.is_dir() else ()
            if any(part.startswith(".") for part in relative[:-1]):
                continue
            if is_test_file(candidate) and (candidate.is_file() or not path.is_dir()):
                found.setdefault(os.path.normpath(candidate), candidate)
    return [found[key] for key in sorted(found)]


def check_test_file(path: str | Path) -> list[Problem]:
    """Every problem of one test file (empty: it loads)."""
    try:
        load_test_file(path)
    except TestFileInvalid as invalid:
        return invalid.problems
    return []


def load_test_file(path: str | Path) -> TestFile:
    where = str(path)
    text = _read_bounded(Path(path))
    try:
        document = parse_yaml(text)
    except YamlSyntaxError as error:
        raise TestFileInvalid([_problem(where, error.position, error.message)]) from None
    except RecursionError:
        raise TestFileInvalid([_problem(where, Position(1, 1), f"nests deeper than {MAX_DEPTH} levels")]) from None
    problems = [
        _problem(
            where,
            dup.position,
            f"duplicate key '{dup.key}' (first at line {dup.first_position.line}); "
            "the second one would be ignored: remove one",
        )
        for dup in document.duplicate_keys
    ]
    deep = _too_deep(document.data, ())
    if deep is not None:
        problems.append(_problem(where, document.position_of(deep), f"nests deeper than {MAX_DEPTH} levels"))
        raise TestFileInvalid(problems)
    if not isinstance(document.data, dict):
        problems.append(_problem(where, Position(1, 1), "a test file is a mapping with workflow and cases"))
        raise TestFileInvalid(problems)
    problems.extend(_schema_problems(document, where))
    cases = document.data.get("cases")
    if isinstance(cases, list) and len(cases) > MAX_CASES:
        problems.append(
            _problem(
                where,
                document.position_of(("cases",)),
                f"{len(cases):,} cases, more than the {MAX_CASES:,} one file may hold; split it",
            )
        )
    problems.extend(_duplicate_names(document, where))
    if problems:
        raise TestFileInvalid(sorted(problems, key=Problem.sort_key))
    return _build(document, where)


def _read_bounded(path: Path) -> str:
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TestFileInvalid(
                [
                    _problem(
                        where,
                        Position(1, 1),
                        f"the file is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a test file may have",
                    )
                ]
            )
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TestFileInvalid([_problem(where, Position(1, 1), f"not UTF-8 text ({error.reason})")]) from None
    except OSError as error:
        raise TestFileInvalid(
            [_problem(where, Position(1, 1), f"cannot read the file: {error.strerror or error}")]
        ) from None


def _too_deep(value: Any, path: DataPath) -> DataPath | None:
    stack: list[tuple[Any, DataPath]] = [(value, path)]
    while stack:
        item, item_path = stack.pop()
        if len(item_path) >= MAX_DEPTH:
            return item_path
        if isinstance(item, dict):
            stack.extend((child, item_path + (key,)) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, item_path + (index,)) for index, child in enumerate(item))
    return None


def _problem(path: str, position: Position, message: str) -> Problem:
    return Problem(path, position.line, position.col, "error", message)


# --------------------------------------------------------------------------- schema


@lru_cache(maxsize=1)
def test_schema_validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema(TEST_SCHEMA))


def _schema_problems(document: YamlDocument, where: str) -> list[Problem]:
    found: dict[tuple[int, int, str], Problem] = {}
    for error in test_schema_validator().iter_errors(document.data):
        for position, message in _translate(error, document):
            found.setdefault((position.line, position.col, message), _problem(where, position, message))
    return list(found.values())


def _translate(error: ValidationError, document: YamlDocument) -> list[tuple[Position, str]]:
    path = tuple(error.absolute_path)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    where = _describe(document.data, path)
    rule: Any = error.validator_value
    instance: Any = error.instance
    if error.validator == "required":
        return [
            (document.position_of(path), f"missing required key '{key}' in {where}")
            for key in rule
            if key not in instance
        ]
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        return [
            (document.key_position_of(path + (key,)), f"unknown key '{key}' in {where}{did_you_mean(key, allowed)}")
            for key in instance
            if key not in allowed
        ]
    position = document.position_of(path)
    got = _show(instance)
    if schema.get("errorMessage"):
        return [(position, f"{where}: {schema['errorMessage']} (got {got})")]
    if error.validator == "enum":
        return [
            (
                position,
                f"{where} must be one of {', '.join(map(str, rule))} (got {got})"
                f"{did_you_mean(instance, [str(option) for option in rule])}",
            )
        ]
    if error.validator == "type":
        names: list[str] = rule if isinstance(rule, list) else [rule]
        wanted = " or ".join(KIND_NAMES.get(name, name) for name in names)
        return [(position, f"{where} must be {wanted} (got {got})")]
    if error.validator == "pattern" and schema.get("patternErrorMessage"):
        return [(position, f"{where}: {schema['patternErrorMessage']} (got {got})")]
    if error.validator in ("minimum", "maximum"):
        bound = "at least" if error.validator == "minimum" else "at most"
        return [(position, f"{where} must be {bound} {rule} (got {got})")]
    if error.validator == "minItems":
        return [(position, f"{where} needs at least {rule} item{'s' if rule != 1 else ''}")]
    return [(position, f"{where}: {error.message}")]


def _describe(data: Any, path: DataPath) -> str:
    """'the file', "case 2 'known contact'", "'expect.status' in case 2 'known contact'"."""
    if len(path) < 2 or path[0] != "cases" or not isinstance(path[1], int):
        return f"'{_dotted(path)}'" if path else "the test file"
    case = data["cases"][path[1]] if isinstance(data.get("cases"), list) else None
    name = case.get("name") if isinstance(case, dict) else None
    label = f"case {path[1] + 1}" + (f" '{name}'" if isinstance(name, str) else "")
    return f"'{_dotted(path[2:])}' in {label}" if len(path) > 2 else label


def _dotted(path: DataPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: Any, candidates: list[str]) -> str:
    if not isinstance(word, str):
        return ""
    same = [candidate for candidate in candidates if candidate.lower() == word.lower() and candidate != word]
    matches = same or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _duplicate_names(document: YamlDocument, where: str) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    cases = document.data.get("cases")
    for index, case in enumerate(cases if isinstance(cases, list) else []):
        name = case.get("name") if isinstance(case, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                _problem(
                    where,
                    document.position_of(("cases", index, "name")),
                    f"case name '{name}' is used twice (first at line {seen[name]}); names "
                    "select cases (-k) and name them in reports: make it unique",
                )
            )
        else:
            seen[name] = document.position_of(("cases", index, "name")).line
    return problems


# --------------------------------------------------------------------------- model


def _build(document: YamlDocument, where: str) -> TestFile:
    data: dict[str, Any] = document.data
    cases = tuple(_case(document, index, case) for index, case in enumerate(data["cases"]))
    return TestFile(where, data["workflow"], data.get("version", "latest"), cases, document)


def _case(document: YamlDocument, index: int, data: dict[str, Any]) -> TestCase:
    mocks = {
        step_id: Mock(
            output=mock.get("output"),
            error=mock.get("error"),
            line=document.position_of(("cases", index, "mocks", step_id)).line,
        )
        for step_id, mock in (data.get("mocks") or {}).items()
    }
    answers = tuple(
        HttpAnswer(
            url=answer["match"]["url"],
            method=answer["match"].get("method"),
            status=answer["respond"].get("status", 200),
            headers=dict(answer["respond"].get("headers") or {}),
            json=answer["respond"].get("json"),
            has_json="json" in answer["respond"],
            text=answer["respond"].get("text"),
        )
        for answer in data.get("http") or []
    )
    return TestCase(
        name=data["name"],
        line=document.position_of(("cases", index)).line,
        input=data.get("input") or {},
        trigger=data.get("trigger") or {"type": "manual"},
        mocks=mocks,
        http=answers,
        expect=data.get("expect") or {},
    )
