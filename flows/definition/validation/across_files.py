"""Checks that need the whole set of files: versions, live versions, workflow calls."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flowdeck.definition.validation.places import _did_you_mean
from flowdeck.definition.validation.report import CheckedFile
from flowdeck.definition.validation.walk import _CheckerBase
from flowdeck.definition.yaml_source import DataPath


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
    _check_call_cycles(files, by_id)


def _check_versions_unique(workflow_id: str, group: list[CheckedFile]) -> None:
    first_of: dict[int, CheckedFile] = {}
    for item in sorted(group, key=lambda each: each.path):
        if item.version is None:
            continue
        first = first_of.setdefault(item.version, item)
        if first is not item:
            item.add(
                "error",
                item.at(("version",)),
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
            "error",
            item.at(("status",)),
            f"workflow '{workflow_id}' has more than one live version: version "
            f"{kept.version} in {kept.path} is live; set this one to published",
        )


def describe_versions(group: Iterable[Any]) -> str:
    """ "1 (published), 2 (live)" for files or definitions with `version` and `status`."""
    listed = sorted({(each.version, each.status) for each in group if each.version is not None})
    return ", ".join(f"{version} ({status})" for version, status in listed) or "none"


def _check_workflow_calls(item: CheckedFile, by_id: dict[str, list[CheckedFile]]) -> None:
    checker_steps = _CheckerBase(item).steps
    for step in checker_steps:
        if step.type != "workflow":
            continue
        called = step.data.get("workflow_id")
        if not isinstance(called, str):
            continue
        path = step.path + ("workflow_id",)
        label = step.label
        group = by_id.get(called)
        if not group:
            hint = _did_you_mean(called, list(by_id))
            item.add(
                "error",
                item.at(path),
                f"{label} calls unknown workflow '{called}'{hint}; known workflows: "
                f"{', '.join(sorted(by_id)) or 'none'}",
            )
            continue
        version = step.data.get("version", "latest")
        version_path = step.path + ("version",) if "version" in step.data else path
        if version == "latest":
            if not any(each.status in ("live", "published") for each in group):
                item.add(
                    "error",
                    item.at(version_path),
                    f"{label} calls workflow '{called}' at 'latest', but it has no live or "
                    f"published version (versions: {describe_versions(group)})",
                )
        elif isinstance(version, int) and not isinstance(version, bool):
            match = [each for each in group if each.version == version]
            if not match:
                item.add(
                    "error",
                    item.at(version_path),
                    f"{label} calls workflow '{called}' version {version}, which does not "
                    f"exist; it has versions {describe_versions(group)}",
                )
            elif match[0].status == "draft" and item.status != "draft":
                item.add(
                    "warning",
                    item.at(version_path),
                    f"{label} calls draft version {version} of '{called}'; drafts may change "
                    f"and run only when pinned from the CLI or TUI",
                )


# ----------------------------------------------------------------------------- call cycles


def _called_file(by_id: dict[str, list[CheckedFile]], called: str, version: Any) -> CheckedFile | None:
    """The file a call runs, as Catalog.resolve picks it ("latest": live, else highest published)."""
    group = by_id.get(called) or []
    if version == "latest":
        live = [each for each in group if each.status == "live" and each.version is not None]
        published = [each for each in group if each.status == "published" and each.version is not None]
        chosen = live or published
        return max(chosen, key=lambda each: each.version or 0) if chosen else None
    if isinstance(version, int) and not isinstance(version, bool):
        return next((each for each in group if each.version == version), None)
    return None


def _check_call_cycles(files: list[CheckedFile], by_id: dict[str, list[CheckedFile]]) -> None:
    """A workflow that calls itself, directly or through others, never ends (an execution
    recursed into a RecursionError, and a worker retried it forever): each call that closes
    a cycle is an error naming the whole cycle."""
    calls: dict[str, list[tuple[DataPath, CheckedFile]]] = {}
    for item in files:
        if item.document is None or not isinstance(item.data, dict):
            continue
        for step in _CheckerBase(item).steps:
            called = step.data.get("workflow_id") if step.type == "workflow" else None
            if not isinstance(called, str):
                continue
            target = _called_file(by_id, called, step.data.get("version", "latest"))
            if target is not None:
                calls.setdefault(item.path, []).append((step.path + ("workflow_id",), target))
    by_path = {item.path: item for item in files}
    for item in files:
        for path, target in calls.get(item.path, []):
            trail = _path_back(target.path, item.path, calls)
            if trail is None:
                continue
            names = " -> ".join(_name(by_path[each]) for each in [item.path, *trail])
            what = "calls its own workflow" if target.path == item.path else "closes a cycle of workflow calls"
            item.add(
                "error",
                item.at(path),
                f"this step {what}: {names}; a workflow may not call itself, directly or through others "
                "(the execution would never end): repeat work with a condition or a new execution instead",
            )


def _path_back(start: str, goal: str, calls: dict[str, list[tuple[DataPath, CheckedFile]]]) -> list[str] | None:
    """The files from `start` to `goal` along calls (breadth first, so the shortest), or None."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current == goal:
            trail = [current]
            while (before := previous[trail[-1]]) is not None:
                trail.append(before)
            return trail[::-1]
        for _, target in calls.get(current, []):
            if target.path not in previous:
                previous[target.path] = current
                queue.append(target.path)
    return None


def _name(item: CheckedFile) -> str:
    return f"{item.workflow_id} v{item.version}"
