"""What validation reports: a `Problem` per finding and a `CheckedFile` per definition file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flowdeck.definition.yaml_source import DataPath, Position, YamlDocument

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
