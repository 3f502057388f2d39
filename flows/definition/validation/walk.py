"""The steps of one file as the in-file checks walk them (steps inside conditions too)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flowdeck.definition.validation.places import _last_index, _step_label
from flowdeck.definition.validation.report import CheckedFile
from flowdeck.definition.yaml_source import DataPath, YamlDocument


@dataclass
class _StepInfo:
    path: DataPath
    data: dict[str, Any]
    id: str | None
    name: str | None
    type: str | None

    @property
    def label(self) -> str:
        return _step_label(self.data, _last_index(self.path))


class _CheckerBase:
    """One file's steps, indexed, and how checks report on them; the checks are mixins.

    Written defensively: the checks also run on files with schema errors (one run reports
    all problems), so every value is type-checked before use and malformed parts are skipped.
    """

    def __init__(self, item: CheckedFile) -> None:
        if item.document is None or not isinstance(item.data, dict):
            raise ValueError(f"{item.path}: the in-file checks need a parsed mapping")
        self.item = item
        self.data: dict[str, Any] = item.data
        self.document: YamlDocument = item.document
        self.steps = list(self._iter_steps(self.data.get("steps"), ("steps",)))
        self.by_path = {step.path: step for step in self.steps}
        self.by_id: dict[str, _StepInfo] = {}
        self.by_name: dict[str, _StepInfo] = {}

    def error(self, path: DataPath, message: str) -> None:
        self.item.add("error", self.document.position_of(path), message)

    def warning(self, path: DataPath, message: str) -> None:
        self.item.add("warning", self.document.position_of(path), message)

    # ---- walking

    def _iter_steps(self, steps: Any, path: DataPath) -> Iterator[_StepInfo]:
        for _, step, step_path in _step_mappings(steps, path):
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
                    yield from self._iter_steps(branch.get("steps"), condition.path + ("branches", index, "steps"))
        yield from self._iter_steps(condition.data.get("default"), condition.path + ("default",))

    def _line(self, path: DataPath) -> int:
        return self.document.position_of(path).line


def _step_mappings(steps: Any, path: DataPath) -> Iterator[tuple[int, dict[str, Any], DataPath]]:
    """(index, step, step's path) for each mapping in a list of steps; anything else is skipped."""
    if not isinstance(steps, list):
        return
    for index, step in enumerate(steps):
        if isinstance(step, dict):
            yield index, step, path + (index,)


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
