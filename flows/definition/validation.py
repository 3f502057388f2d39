"""Every check a workflow definition must pass, reported as `PATH:LINE:COL: error: MESSAGE`.

Validation is complete before anything runs: a definition that reaches the engine has unique
step ids, parseable expressions that only read steps which have run, Python code that defines
`run(ctx)`, valid cron expressions and time zones, and a version story that `latest` can
resolve. Three layers, each reporting every problem it finds rather than the first:

1. YAML (`flows.yaml_source`): syntax errors and duplicate keys, with positions.
2. The JSON Schema (`schemas/workflow.schema.json`), the same file editors and CI use, with
   jsonschema's errors rewritten into sentences that name the step and the field.
3. Checks a schema cannot express: within one file (`_FileChecker`) and across the files of
   a directory (`check_across_files`): live versions, duplicate versions, called workflows.

Reference rules (documented in docs/definitions.md): an expression may read `input`,
`trigger`, `execution`, and steps that have certainly run before it: earlier siblings,
earlier steps of enclosing blocks, the enclosing condition (its output is set before its
branch runs), and a condition once it is finished. Steps inside a finished condition's
branches may not have run (another branch was taken): reading them is a warning. Anything
else (unknown names, later steps, the step itself, another branch) is an error.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from flowdeck.definition import expressions
from flowdeck.definition.durations import format_seconds, parse_duration, wait_duration_seconds
from flowdeck.errors import ExpressionError
from flowdeck.definition.schema import load_schema
from flowdeck.definition.model import DEFAULT_SYNC_TIMEOUT, DEFAULT_TIMEOUT
from flowdeck.definition.yaml_source import DataPath, Position, YamlDocument, YamlSyntaxError, parse_yaml

__all__ = [
    "Problem",
    "CheckedFile",
    "schema_validator",
    "check_text",
    "check_across_files",
    "find_definition_files",
    "check_paths",
    "validate_paths",
]

DEFINITION_SUFFIXES = (".yaml", ".yml")
CONTEXT_ROOTS = ("input", "trigger", "execution")
STEP_TYPES = ("http", "code", "condition", "wait", "output", "fail", "note", "action", "workflow")
# Fields whose strings are `{{ }}` templates, per step type (see docs/definitions.md).
TEMPLATED_FIELDS = {
    "http": ("url", "headers", "query", "body"),
    "output": ("fields",),
    "fail": ("message",),
    "action": ("with",),
    "workflow": ("input",),
}

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding, pointing at the value to edit (for a missing key: the mapping)."""

    path: str
    line: int
    col: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.message)


@dataclass
class CheckedFile:
    """One definition file after validation; `document` is None when it is not YAML."""

    path: str
    source_text: str
    document: YamlDocument | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def data(self) -> Any:
        return self.document.data if self.document else None

    @property
    def has_errors(self) -> bool:
        return any(problem.is_error for problem in self.problems)

    def field(self, key: str) -> Any:
        """A top-level value, or None when the file is not a mapping."""
        return self.data.get(key) if isinstance(self.data, dict) else None

    @property
    def workflow_id(self) -> str | None:
        value = self.field("id")
        return value if isinstance(value, str) else None

    @property
    def version(self) -> int | None:
        value = self.field("version")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def status(self) -> str | None:
        value = self.field("status")
        if value is None and isinstance(self.data, dict):
            return "draft"
        return value if isinstance(value, str) else None

    def at(self, path: DataPath) -> Position:
        return self.document.position_of(path) if self.document else Position(1, 1)

    def add(self, severity: Severity, position: Position, message: str) -> None:
        self.problems.append(Problem(self.path, position.line, position.col, severity, message))


# --------------------------------------------------------------------------- entry points


def find_definition_files(paths: Iterable[str | Path]) -> list[Path]:
    """Definition files under `paths` (files as given, directories searched recursively).

    Hidden directories (`.git`, `.venv`) are skipped; the result is sorted and unique.
    """
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for candidate in path.rglob("*"):
                relative = candidate.relative_to(path).parts
                if any(part.startswith(".") for part in relative[:-1]):
                    continue
                if candidate.suffix in DEFINITION_SUFFIXES and candidate.is_file():
                    found.setdefault(os.path.normpath(candidate), candidate)
        else:
            found.setdefault(os.path.normpath(path), path)
    return [found[key] for key in sorted(found)]


def check_paths(paths: Iterable[str | Path]) -> list[CheckedFile]:
    """Validate every definition under `paths`, each file alone and then as one set."""
    checked = [_check_file(path) for path in find_definition_files(paths)]
    check_across_files(checked)
    for item in checked:
        item.problems.sort(key=Problem.sort_key)
    return checked


def validate_paths(paths: list[Path]) -> list[Problem]:
    """All problems of all definition files under `paths`, sorted by path, line, column.

    What `flowdeck validate [PATH ...]` prints. A path that does not exist is a problem too.
    Checks across files (live and duplicate versions, called workflows) see only this set.
    """
    problems: list[Problem] = []
    for given in paths:
        if not Path(given).exists():
            problems.append(
                Problem(str(given), 1, 1, "error", "no such file or directory")
            )
    existing = [path for path in paths if Path(path).exists()]
    for item in check_paths(existing):
        problems.extend(item.problems)
    return sorted(problems, key=Problem.sort_key)


def _check_file(path: Path) -> CheckedFile:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        item = CheckedFile(str(path), "", None)
        item.add("error", Position(1, 1), f"not UTF-8 text ({error.reason} at byte {error.start})")
        return item
    except OSError as error:
        item = CheckedFile(str(path), "", None)
        item.add("error", Position(1, 1), f"cannot read the file: {error.strerror or error}")
        return item
    return check_text(text, str(path))


def check_text(text: str, path: str) -> CheckedFile:
    """Every single-file check on one definition's text (`path` is used in messages)."""
    try:
        document = parse_yaml(text)
    except YamlSyntaxError as error:
        item = CheckedFile(path, text, None)
        item.add("error", error.position, error.message)
        return item
    item = CheckedFile(path, text, document)
    for duplicate in document.duplicate_keys:
        where = _describe(document.data, duplicate.mapping_path)
        item.add(
            "error",
            duplicate.position,
            f"duplicate key '{duplicate.key}' in {where} (first at line "
            f"{duplicate.first_position.line}); the second one would be ignored: remove one",
        )
    if not isinstance(document.data, dict):
        found = "an empty file" if document.data is None else _json_kind(document.data)
        item.add(
            "error",
            document.position_of(()),
            f"a workflow definition is a mapping with id, version and steps; found {found}",
        )
        return item
    item.problems.extend(_schema_problems(document, path))
    _FileChecker(item).run()
    return item


# --------------------------------------------------------------------------- the schema


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
                problems.setdefault(
                    key, Problem(path, position.line, position.col, "error", message)
                )
    return list(problems.values())


def _leaf_errors(
    error: ValidationError, fallback: str | None
) -> Iterator[tuple[ValidationError, str | None]]:
    """The errors worth showing: inside a oneOf/anyOf, the branch of the value's JSON type.

    jsonschema reports a failed oneOf as one error whose `context` holds every branch's
    errors, mostly "is not of type ..." noise. When exactly one branch accepts the value's
    type, its errors are the real ones; otherwise the schema's `errorMessage` says it best.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        yield error, fallback
        return
    message = fallback or error.schema.get("errorMessage")
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


def _translate(
    error: ValidationError, fallback: str | None, document: YamlDocument
) -> list[tuple[Position, str]]:
    data = document.data
    path = tuple(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "required":
        where = _describe(data, path)
        missing = [key for key in error.validator_value if key not in value]
        return [
            (document.position_of(path), f"missing required key '{key}' in {where}")
            for key in missing
        ]
    if kind == "additionalProperties":
        where = _describe(data, path)
        allowed = list(error.schema.get("properties", {}))
        found = []
        for key in value:
            if key in allowed:
                continue
            hint = _did_you_mean(key, allowed)
            if not hint and allowed:
                hint = f" (allowed: {', '.join(allowed)})"
            found.append(
                (document.key_position_of(path + (key,)), f"unknown key '{key}' in {where}{hint}")
            )
        return found
    position = document.position_of(path)
    if kind in ("oneOf", "anyOf") and fallback and isinstance(value, dict) and _is_step(path):
        return [(position, f"{_describe(data, path)} {fallback}")]
    subject = _subject(data, path)
    got = f" (got {_show(value)})"
    if kind in ("enum", "const"):
        options = error.validator_value if kind == "enum" else [error.validator_value]
        choices = ", ".join(str(option) for option in options)
        hint = _did_you_mean(value, [str(option) for option in options]) if isinstance(value, str) else ""
        if path and path[-1] == "type" and _is_step(path[:-1]):
            return [(position, f"unknown step type {_show(value)} in {_describe(data, path[:-1])}{hint}; use one of {choices}")]
        return [(position, f"{subject} must be {'one of ' if len(options) > 1 else ''}{choices}{got}{hint}")]
    if fallback and kind in ("type", "pattern", "minimum", "oneOf", "anyOf", "not"):
        return [(position, f"{subject}: {fallback}{got}")]
    if kind == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_KIND_NAMES.get(name, name) for name in expected)
        return [(position, f"{subject} must be {wanted} (got {_json_kind(value)})")]
    if kind == "pattern":
        hint = error.schema.get("patternErrorMessage")
        if hint:
            return [(position, f"{subject}: {hint}{got}")]
        return [(position, f"{subject} must match {error.validator_value}{got}")]
    if kind in ("minimum", "exclusiveMinimum"):
        return [(position, f"{subject} must be at least {error.validator_value}{got}")]
    if kind == "minLength":
        return [(position, f"{subject} must not be empty")]
    if kind == "minItems":
        count = error.validator_value
        return [(position, f"{subject} needs at least {count} item{'s' if count != 1 else ''}")]
    return [(position, f"{subject}: {fallback or error.message}")]


_KIND_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json_kind(value)
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    pool = list(candidates)
    lowered = {candidate.lower(): candidate for candidate in pool}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


# --------------------------------------------------------------------------- describing places


def _is_steps_list(path: DataPath) -> bool:
    """True for the paths of step lists: `steps`, a branch's `steps`, a condition's `default`."""
    if path == ("steps",):
        return True
    if len(path) >= 4 and path[-1] == "steps" and isinstance(path[-2], int) and path[-3] == "branches":
        return _is_step(path[:-3])
    if len(path) >= 3 and path[-1] == "default":
        return _is_step(path[:-1])
    return False


def _is_step(path: DataPath) -> bool:
    return len(path) >= 2 and isinstance(path[-1], int) and _is_steps_list(path[:-1])


def _is_branch(path: DataPath) -> bool:
    return len(path) >= 3 and isinstance(path[-1], int) and path[-2] == "branches" and _is_step(path[:-2])


def _get(data: Any, path: DataPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _step_label(step: Any, index: int) -> str:
    step = step if isinstance(step, dict) else {}
    kind = step.get("type")
    prefix = f"{kind} step" if kind in STEP_TYPES else "step"
    step_id = step.get("id")
    return f"{prefix} '{step_id}'" if isinstance(step_id, str) else f"{prefix} #{index + 1}"


def _describe(data: Any, path: DataPath) -> str:
    """A phrase for the mapping at `path`: "http step 'fetch'", "trigger 1", "workflow 'x'"."""
    path = tuple(path)
    if not path:
        workflow_id = data.get("id") if isinstance(data, dict) else None
        return f"workflow '{workflow_id}'" if isinstance(workflow_id, str) else "the workflow"
    if _is_step(path):
        return _step_label(_get(data, path), path[-1])
    if _is_branch(path):
        branch = _get(data, path)
        name = branch.get("name") if isinstance(branch, dict) else None
        label = f"branch '{name}'" if isinstance(name, str) else f"branch {path[-1] + 1}"
        return f"{label} of {_describe(data, path[:-2])}"
    if path == ("retries",):
        return "retries"
    if path[0] == "input":
        return "the input schema"
    if len(path) == 2 and path[0] == "triggers" and isinstance(path[1], int):
        return f"trigger {path[1] + 1}"
    return _subject(data, path)


def _is_named_container(path: DataPath) -> bool:
    """Places `_describe` names by themselves (the workflow, steps, branches, triggers)."""
    return (
        path == ()
        or _is_step(path)
        or _is_branch(path)
        or path == ("retries",)
        or (len(path) == 2 and path[0] == "triggers" and isinstance(path[1], int))
    )


def _subject(data: Any, path: DataPath) -> str:
    """A phrase for the value at `path`, named after its field: "'timeout' in http step 'fetch'"."""
    path = tuple(path)
    if _is_named_container(path):
        return _describe(data, path)
    container = path
    while not _is_named_container(container):
        container = container[:-1]
    name = ""
    for part in path[len(container):]:
        if isinstance(part, int):
            name += f"[{part + 1}]"
        else:
            name += f".{part}" if name else str(part)
    return f"'{name}' in {_describe(data, container)}"


# --------------------------------------------------------------------------- one file


@dataclass
class _StepInfo:
    path: DataPath
    data: dict[str, Any]
    id: str | None
    name: str | None
    type: str | None

    @property
    def label(self) -> str:
        return _step_label(self.data, self.path[-1])


class _FileChecker:
    """The checks of one file that the schema cannot express.

    Written defensively: it also runs on files with schema errors (one run reports all
    problems), so every value is type-checked before use and malformed parts are skipped.
    """

    def __init__(self, item: CheckedFile) -> None:
        self.item = item
        self.data: dict[str, Any] = item.data
        self.document: YamlDocument = item.document  # type: ignore[assignment]
        self.steps = list(self._iter_steps(self.data.get("steps"), ("steps",)))
        self.by_path = {step.path: step for step in self.steps}
        self.by_id: dict[str, _StepInfo] = {}
        self.by_name: dict[str, _StepInfo] = {}

    def run(self) -> None:
        self._check_step_identity()
        self._check_references(self.data.get("steps"), ("steps",), set(), {})
        for step in self.steps:
            self._check_step(step)
        self._check_unreachable(self.data.get("steps"), ("steps",))
        self._check_input_schema_and_triggers()

    def error(self, path: DataPath, message: str) -> None:
        self.item.add("error", self.document.position_of(path), message)

    def warning(self, path: DataPath, message: str) -> None:
        self.item.add("warning", self.document.position_of(path), message)

    # ---- walking

    def _iter_steps(self, steps: Any, path: DataPath) -> Iterator[_StepInfo]:
        if not isinstance(steps, list):
            return
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            step_path = path + (index,)
            info = _StepInfo(
                path=step_path,
                data=step,
                id=step.get("id") if isinstance(step.get("id"), str) else None,
                name=step.get("name") if isinstance(step.get("name"), str) else None,
                type=step.get("type") if isinstance(step.get("type"), str) else None,
            )
            if info.name is None:
                info.name = info.id
            yield info
            if info.type == "condition":
                yield from self._iter_nested(info)

    def _iter_nested(self, condition: _StepInfo) -> Iterator[_StepInfo]:
        branches = condition.data.get("branches")
        if isinstance(branches, list):
            for index, branch in enumerate(branches):
                if isinstance(branch, dict):
                    yield from self._iter_steps(
                        branch.get("steps"), condition.path + ("branches", index, "steps")
                    )
        yield from self._iter_steps(condition.data.get("default"), condition.path + ("default",))

    # ---- ids and names

    def _check_step_identity(self) -> None:
        for step in self.steps:
            if step.id is not None:
                first = self.by_id.get(step.id)
                if first is not None:
                    self.error(
                        step.path + ("id",),
                        f"duplicate step id '{step.id}' (also used at line "
                        f"{self._line(first.path)}); step ids are unique in the whole workflow",
                    )
                else:
                    self.by_id[step.id] = step
                if step.id in CONTEXT_ROOTS:
                    self.error(
                        step.path + ("id",),
                        f"'{step.id}' cannot be a step id: expressions use it for the "
                        f"workflow's {step.id}; choose another id",
                    )
        for step in self.steps:  # names after ids: a name must not be another step's id
            if step.name is not None:
                first = self.by_name.get(step.name)
                name_path = step.path + (("name",) if "name" in step.data else ("id",))
                same_as_id = self.by_id.get(step.name) if "name" in step.data else None
                if same_as_id is not None and same_as_id is not step and first is None:
                    self.error(
                        name_path,
                        f"step name '{step.name}' is the id of {same_as_id.label} at line "
                        f"{self._line(same_as_id.path)}; expressions could not tell them apart",
                    )
                elif first is None:
                    self.by_name[step.name] = step
                elif "name" in step.data or "name" in first.data:  # else: a duplicate id, reported
                    self.error(
                        name_path,
                        f"duplicate step name '{step.name}' (also the name of {first.label} "
                        f"at line {self._line(first.path)}); give each step its own 'name'",
                    )
                if "name" in step.data and step.name in CONTEXT_ROOTS:
                    self.error(
                        name_path,
                        f"'{step.name}' cannot be a step name: expressions use it for the "
                        f"workflow's {step.name}",
                    )
        for step in self.steps:
            if step.type == "condition":
                self._check_branch_names(step)

    def _check_branch_names(self, condition: _StepInfo) -> None:
        seen: dict[str, int] = {}
        branches = condition.data.get("branches")
        for index, branch in enumerate(branches if isinstance(branches, list) else []):
            name = branch.get("name") if isinstance(branch, dict) else None
            if not isinstance(name, str):
                continue
            path = condition.path + ("branches", index, "name")
            if name in seen:
                self.error(
                    path,
                    f"duplicate branch name '{name}' in {condition.label} (also branch "
                    f"{seen[name] + 1}); the condition's output names the branch taken",
                )
            else:
                seen[name] = index

    def _line(self, path: DataPath) -> int:
        return self.document.position_of(path).line

    # ---- expressions and what they may read

    def _check_references(
        self, steps: Any, path: DataPath, definite: set[str], maybe: dict[str, str]
    ) -> None:
        """Walk steps in execution order, knowing which steps certainly ran before each.

        `definite`: ids of steps that have run; `maybe`: ids of steps inside branches of
        finished conditions, mapped to that condition's id. Both are updated in place.
        """
        if not isinstance(steps, list):
            return
        for index, data in enumerate(steps):
            if not isinstance(data, dict):
                continue
            step_path = path + (index,)
            step = self.by_path.get(step_path)
            if step is None:
                continue
            if step.type == "condition":
                branches = data.get("branches")
                for b_index, branch in enumerate(branches if isinstance(branches, list) else []):
                    if not isinstance(branch, dict):
                        continue
                    branch_path = step_path + ("branches", b_index)
                    if "when" in branch:
                        self._check_expression_field(
                            step, branch_path + ("when",), branch["when"], definite, maybe,
                            f"'when' of {_describe(self.data, branch_path)}",
                        )
                    inner = definite | ({step.id} if step.id else set())
                    self._check_references(
                        branch.get("steps"), branch_path + ("steps",), inner, dict(maybe)
                    )
                inner = definite | ({step.id} if step.id else set())
                self._check_references(data.get("default"), step_path + ("default",), inner, dict(maybe))
                for nested in self._iter_nested(step):
                    if nested.id and nested.id not in maybe:
                        maybe[nested.id] = step.id or "?"
            else:
                self._check_step_expressions(step, definite, maybe)
            if step.id:
                definite.add(step.id)

    def _check_step_expressions(
        self, step: _StepInfo, definite: set[str], maybe: dict[str, str]
    ) -> None:
        if step.type == "wait" and "until" in step.data:
            self._check_expression_field(
                step, step.path + ("until",), step.data["until"], definite, maybe,
                f"'until' of {step.label}",
            )
        for name in TEMPLATED_FIELDS.get(step.type or "", ()):
            if name not in step.data:
                continue
            for sub_path, text in _strings_with_paths(step.data[name], step.path + (name,)):
                if "{{" not in text:
                    continue
                where = f"{_subject(self.data, sub_path)}"
                problem = expressions.check_template(text)
                if problem:
                    self.error(sub_path, f"invalid template in {where}: {problem}")
                    continue
                for expression in expressions.template_expressions(text):
                    self._check_reads(step, sub_path, expression, definite, maybe, where)

    def _check_expression_field(
        self, step: _StepInfo, path: DataPath, value: Any,
        definite: set[str], maybe: dict[str, str], where: str,
    ) -> None:
        if not isinstance(value, str) or not value.strip():
            return  # the schema reports it
        problem = expressions.check_syntax(value)
        if problem:
            self.error(path, f"invalid expression in {where}: {problem}")
            return
        self._check_reads(step, path, value, definite, maybe, where)

    def _check_reads(
        self, step: _StepInfo, path: DataPath, expression: str,
        definite: set[str], maybe: dict[str, str], where: str,
    ) -> None:
        try:
            roots = expressions.referenced_roots(expression)
        except ExpressionError as error:
            self.error(path, f"invalid expression in {where}: {error.message}")
            return
        for root in sorted(roots):
            if root in CONTEXT_ROOTS:
                continue
            target = self.by_id.get(root) or self.by_name.get(root)
            if target is None or target.id is None:
                known = list(CONTEXT_ROOTS) + [info.id for info in self.steps if info.id]
                self.error(
                    path,
                    f"{where} reads '{root}', which is not input, trigger, execution or a "
                    f"step of this workflow{_did_you_mean(root, known)}",
                )
            elif target.id in definite:
                continue
            elif target.id in maybe:
                self.warning(
                    path,
                    f"{where} reads step '{target.id}', which is inside a branch of condition "
                    f"step '{maybe[target.id]}' and may not have run (another branch taken); "
                    f"it reads as null then",
                )
            else:
                self.error(path, f"{where} reads step '{target.id}', {self._why_not_run(step, target)}")

    def _why_not_run(self, reader: _StepInfo, target: _StepInfo) -> str:
        if target.path == reader.path:
            return "its own output, which does not exist while it runs"
        common: DataPath = ()
        for mine, theirs in zip(reader.path, target.path):
            if mine != theirs:
                break
            common += (mine,)
        if common == reader.path:
            return (
                "which is inside this condition's branches: it has not run when the "
                "branches are checked"
            )
        if common and common[-1] == "branches" and _is_step(common[:-1]):
            condition = common[:-1]
        elif _is_step(common) and {reader.path[len(common)], target.path[len(common)]} <= {
            "branches",
            "default",
        }:
            condition = common
        else:
            return f"which has not run yet at this point (it comes later, line {self._line(target.path)})"
        label = _step_label(_get(self.data, condition), condition[-1])
        return f"which is in another branch of {label}: the two never run in the same execution"

    # ---- per step type

    def _check_step(self, step: _StepInfo) -> None:
        if step.type == "code":
            self._check_code(step)
        elif step.type == "wait":
            self._check_wait(step)

    def _check_code(self, step: _StepInfo) -> None:
        code = step.data.get("code")
        if not isinstance(code, str) or not code.strip():
            return
        path = step.path + ("code",)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(code, filename=f"<code of {step.label}>")
        except SyntaxError as error:
            position = self._position_in_text_value(path, error.lineno or 1, error.offset or 1)
            self.item.add(
                "error", position,
                f"Python syntax error in the code of {step.label}: {error.msg} "
                f"(code line {error.lineno or 1})",
            )
            return
        except ValueError as error:  # e.g. a NUL character
            self.error(path, f"the code of {step.label} cannot be parsed: {error}")
            return
        run = None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
                run = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(target, ast.Name) and target.id == "run" for target in targets):
                    run = node
        if run is None:
            self.error(path, f"the code of {step.label} does not define run(ctx); add `def run(ctx):` returning the output")
            return
        if isinstance(run, ast.AsyncFunctionDef):
            self._code_error(path, run, f"run in {step.label} is async; write `def run(ctx):`")
            return
        if isinstance(run, ast.FunctionDef) and not _accepts_one_argument(run.args):
            self._code_error(path, run, f"run in {step.label} must take exactly one argument, the context: `def run(ctx):`")

    def _code_error(self, path: DataPath, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        self.item.add("error", self._position_in_text_value(path, line, col), message)

    def _position_in_text_value(self, path: DataPath, line: int, col: int) -> Position:
        """The file position of (line, col) inside a block scalar (`code: |`); else the value."""
        start = self.document.position_of(path)
        lines = self.item.source_text.splitlines()
        if start.line - 1 >= len(lines):
            return start
        indicator = lines[start.line - 1][start.col - 1 : start.col]
        if indicator not in ("|", ">"):
            return start
        target = start.line + line  # content starts on the line after the indicator
        if target - 1 >= len(lines):
            return start
        text = lines[target - 1]
        indent = len(text) - len(text.lstrip(" "))
        block_indent = min(
            (len(row) - len(row.lstrip(" ")) for row in lines[start.line : target] if row.strip()),
            default=indent,
        )
        return Position(target, block_indent + col)

    def _check_wait(self, step: _StepInfo) -> None:
        if "duration" not in step.data:
            return
        try:
            seconds = wait_duration_seconds(step.data["duration"])
        except ValueError:
            return  # the schema reports it
        path = step.path + ("duration",)
        sync_limit = self._duration("sync_timeout", DEFAULT_SYNC_TIMEOUT)
        timeout = self._duration("timeout", DEFAULT_TIMEOUT)
        if seconds > timeout:
            self.warning(
                path,
                f"{step.label} waits {format_seconds(seconds)}, longer than the workflow "
                f"timeout ({format_seconds(timeout)}): every execution will time out during "
                f"the wait; raise 'timeout'",
            )
        elif seconds > sync_limit:
            self.warning(
                path,
                f"{step.label} waits {format_seconds(seconds)}, longer than the sync limit "
                f"({format_seconds(sync_limit)}): sync calls hand off to async before it "
                f"ends; call this workflow in async mode",
            )

    def _duration(self, key: str, default: float) -> float:
        try:
            return parse_duration(self.data[key]) if key in self.data else default
        except ValueError:
            return default

    # ---- reachability

    def _check_unreachable(self, steps: Any, path: DataPath) -> None:
        if not isinstance(steps, list):
            return
        ender = None
        for index, data in enumerate(steps):
            if not isinstance(data, dict):
                continue
            step_path = path + (index,)
            if ender is not None:
                self.warning(
                    step_path,
                    f"{_step_label(data, index)} never runs: {ender} before it ends the "
                    f"execution",
                )
                return
            if data.get("type") in ("output", "fail"):
                ender = _step_label(data, index)
            if data.get("type") == "condition":
                branches = data.get("branches")
                for b_index, branch in enumerate(branches if isinstance(branches, list) else []):
                    if isinstance(branch, dict):
                        self._check_unreachable(
                            branch.get("steps"), step_path + ("branches", b_index, "steps")
                        )
                self._check_unreachable(data.get("default"), step_path + ("default",))

    # ---- input schema and triggers

    def _check_input_schema_and_triggers(self) -> None:
        schema = self.data.get("input")
        input_validator = None
        if isinstance(schema, dict):
            meta = _meta_schema_validator()
            schema_errors = list(meta.iter_errors(schema))
            for error in schema_errors:
                where = "/".join(str(part) for part in error.absolute_path)
                self.error(
                    ("input",) + tuple(error.absolute_path),
                    f"the input schema is not a valid JSON Schema"
                    f"{' at ' + where if where else ''}: {error.message}",
                )
            if not schema_errors:
                input_validator = Draft202012Validator(schema, format_checker=FormatChecker())
        triggers = self.data.get("triggers")
        for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
            if isinstance(trigger, dict):
                self._check_trigger(trigger, ("triggers", index), input_validator)

    def _check_trigger(
        self, trigger: dict[str, Any], path: DataPath, input_validator: Draft202012Validator | None
    ) -> None:
        label = f"trigger {path[-1] + 1}"
        cron = trigger.get("cron")
        if isinstance(cron, str) and cron.strip() and not _cron_is_valid(cron):
            self.error(
                path + ("cron",),
                f"{label} has an invalid cron expression {cron!r}; use five fields "
                f"'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'",
            )
        zone = trigger.get("timezone")
        if isinstance(zone, str) and not _zone_is_valid(zone):
            self.error(
                path + ("timezone",),
                f"{label} has an unknown time zone {zone!r}; use an IANA name such as "
                f"UTC or Europe/Paris",
            )
        trigger_input = trigger.get("input", {})
        if input_validator is not None and isinstance(trigger_input, dict):
            for error in input_validator.iter_errors(trigger_input):
                field_name = ".".join(str(part) for part in error.absolute_path) or "input"
                self.error(
                    path + ("input",) + tuple(error.absolute_path),
                    f"{label} input does not satisfy the workflow's input schema: "
                    f"{field_name}: {error.message}",
                )


@lru_cache(maxsize=1)
def _meta_schema_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _strings_with_paths(value: Any, path: DataPath) -> Iterator[tuple[DataPath, str]]:
    """Every string inside `value` with its data path (positions need the path)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings_with_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_with_paths(item, path + (index,))


def _accepts_one_argument(arguments: ast.arguments) -> bool:
    positional = arguments.posonlyargs + arguments.args
    required = len(positional) - len(arguments.defaults)
    required_keyword_only = [
        arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None
    ]
    if required_keyword_only or required > 1:
        return False
    return bool(positional) or arguments.vararg is not None


def _cron_is_valid(cron: str) -> bool:
    try:
        return bool(croniter.is_valid(cron))
    except Exception:  # croniter raises assorted errors for odd input; any means invalid
        return False


def _zone_is_valid(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except Exception:  # ZoneInfoNotFoundError, ValueError for paths, ...: all mean unknown
        return False
    return True


# --------------------------------------------------------------------------- across files


def check_across_files(files: list[CheckedFile]) -> None:
    """Checks that need the whole set: unique (id, version), one live version per id,
    and `workflow` steps that call a workflow and version that exist. Adds to each file."""
    by_id: dict[str, list[CheckedFile]] = {}
    for item in files:
        if item.workflow_id is not None:
            by_id.setdefault(item.workflow_id, []).append(item)
    for workflow_id, group in by_id.items():
        _check_versions_unique(workflow_id, group)
        _check_one_live(workflow_id, group)
    for item in files:
        if item.document is not None and isinstance(item.data, dict):
            _check_workflow_calls(item, by_id)


def _check_versions_unique(workflow_id: str, group: list[CheckedFile]) -> None:
    first_of: dict[int, CheckedFile] = {}
    for item in sorted(group, key=lambda each: each.path):
        if item.version is None:
            continue
        first = first_of.setdefault(item.version, item)
        if first is not item:
            item.add(
                "error", item.at(("version",)),
                f"workflow '{workflow_id}' version {item.version} is already defined in "
                f"{first.path}; give this file the next free version number",
            )


def _check_one_live(workflow_id: str, group: list[CheckedFile]) -> None:
    live = [item for item in group if item.status == "live"]
    if len(live) < 2:
        return
    live.sort(key=lambda each: (each.version or 0, each.path), reverse=True)
    kept = live[0]
    for item in live[1:]:
        item.add(
            "error", item.at(("status",)),
            f"workflow '{workflow_id}' has more than one live version: version "
            f"{kept.version} in {kept.path} is live; set this one to published",
        )


def describe_versions(group: Iterable[Any]) -> str:
    """"1 (published), 2 (live)" for files or definitions with `version` and `status`."""
    listed = sorted({(each.version, each.status) for each in group if each.version is not None})
    return ", ".join(f"{version} ({status})" for version, status in listed) or "none"


def _check_workflow_calls(item: CheckedFile, by_id: dict[str, list[CheckedFile]]) -> None:
    checker_steps = _FileChecker(item).steps
    for step in checker_steps:
        if step.type != "workflow":
            continue
        called = step.data.get("workflow_id")
        if not isinstance(called, str):
            continue
        path = step.path + ("workflow_id",)
        label = step.label
        if called == item.workflow_id:
            item.add("warning", item.at(path), f"{label} calls its own workflow: make sure the recursion ends")
        group = by_id.get(called)
        if not group:
            hint = _did_you_mean(called, list(by_id))
            item.add(
                "error", item.at(path),
                f"{label} calls unknown workflow '{called}'{hint}; known workflows: "
                f"{', '.join(sorted(by_id)) or 'none'}",
            )
            continue
        version = step.data.get("version", "latest")
        version_path = step.path + ("version",) if "version" in step.data else path
        if version == "latest":
            if not any(each.status in ("live", "published") for each in group):
                item.add(
                    "error", item.at(version_path),
                    f"{label} calls workflow '{called}' at 'latest', but it has no live or "
                    f"published version (versions: {describe_versions(group)})",
                )
        elif isinstance(version, int) and not isinstance(version, bool):
            match = [each for each in group if each.version == version]
            if not match:
                item.add(
                    "error", item.at(version_path),
                    f"{label} calls workflow '{called}' version {version}, which does not "
                    f"exist; it has versions {describe_versions(group)}",
                )
            elif match[0].status == "draft" and item.status != "draft":
                item.add(
                    "warning", item.at(version_path),
                    f"{label} calls draft version {version} of '{called}'; drafts may change "
                    f"and run only when pinned from the CLI or TUI",
                )
