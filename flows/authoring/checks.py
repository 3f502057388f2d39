"""`flowdeck validate`: definitions and test files together, printed for a person or for CI.

Definitions go through `flowdeck.definition.validation`; `*.test.yaml` files are not workflow
versions and are checked against their own schema (`testfile`), with the same
`PATH:LINE:COL` problems. Formats: `text` (one problem a line), `json`, and `github`
(workflow commands that GitHub Actions shows as annotations on the lines of a pull request).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from flowdeck.authoring.testfile import check_test_file, find_test_files
from flowdeck.definition.validation import Problem, validate_paths

FORMATS = ("text", "json", "github")


def check_targets(targets: Iterable[Path]) -> list[Problem]:
    """Every problem of the definitions and test files under `targets`, sorted."""
    given = list(targets)
    problems = validate_paths(given)
    for path in find_test_files(target for target in given if target.exists()):
        problems.extend(check_test_file(path))
    return sorted(problems, key=Problem.sort_key)


def render(problems: list[Problem], fmt: str) -> str:
    """The problems in `fmt` (see FORMATS); empty text when there are none (text, github)."""
    if fmt == "json":
        errors = sum(1 for problem in problems if problem.is_error)
        return json.dumps(
            {
                "errors": errors,
                "warnings": len(problems) - errors,
                "problems": [
                    {"path": p.path, "line": p.line, "col": p.col, "severity": p.severity, "message": p.message}
                    for p in problems
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    if fmt == "github":
        return "\n".join(
            f"::{p.severity} file={_property(p.path)},line={p.line},col={p.col}::{_data(p.message)}" for p in problems
        )
    return "\n".join(map(str, problems))


def _data(text: str) -> str:
    """GitHub's escaping of a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
