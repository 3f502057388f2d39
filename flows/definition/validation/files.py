"""The entry points: find definition files, check each alone, then the set together."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from flowdeck.definition.validation.across_files import check_across_files
from flowdeck.definition.validation.frozen import check_frozen
from flowdeck.definition.validation.in_file import _FileChecker
from flowdeck.definition.validation.places import _describe, _json_kind
from flowdeck.definition.validation.report import DEFINITION_SUFFIXES, CheckedFile, Problem
from flowdeck.definition.validation.schema_errors import _schema_problems
from flowdeck.definition.yaml_source import Position, YamlSyntaxError, parse_yaml

# Workflow tests (`flowdeck test`, flowdeck.authoring): YAML too, never workflow versions.
TEST_FILE_SUFFIXES = (".test.yaml", ".test.yml")


def find_definition_files(paths: Iterable[str | Path]) -> list[Path]:
    """Definition files under `paths` (files as given, directories searched recursively).

    Hidden directories (`.git`, `.venv`) and test files (`*.test.yaml`) are skipped; the
    result is sorted and unique.
    """
    found: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for candidate in path.rglob("*"):
                relative = candidate.relative_to(path).parts
                if any(part.startswith(".") for part in relative[:-1]):
                    continue
                if (
                    candidate.suffix in DEFINITION_SUFFIXES
                    and not candidate.name.endswith(TEST_FILE_SUFFIXES)
                    and candidate.is_file()
                ):
                    found.setdefault(os.path.normpath(candidate), candidate)
        elif not path.name.endswith(TEST_FILE_SUFFIXES):
            found.setdefault(os.path.normpath(path), path)
    return [found[key] for key in sorted(found)]


def check_paths(paths: Iterable[str | Path]) -> list[CheckedFile]:
    """Validate every definition under `paths`, each file alone and then as one set."""
    checked = [_check_file(path) for path in find_definition_files(paths)]
    check_across_files(checked)
    check_frozen(checked)
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
            problems.append(Problem(str(given), 1, 1, "error", "no such file or directory"))
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
    try:
        return check_text(text, str(path))
    except (RecursionError, MemoryError, ValueError, OverflowError) as error:
        # The bounds of yaml_bounds should make this unreachable; if a file still finds a
        # way, it is reported as broken and every other file of the directory still loads.
        item = CheckedFile(str(path), text, None)
        item.add("error", Position(1, 1), f"flowdeck cannot check this file ({type(error).__name__}); simplify it")
        return item


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
