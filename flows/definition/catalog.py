"""The catalog: every workflow definition in a directory, validated and ready to run.

`load_catalog()` reads every `*.yaml`/`*.yml` under the definitions directory, runs all of
`flows.validation` on them, and builds `flows.model` objects from the files without errors.
Broken files stay visible (`Catalog.files`) so the CLI and TUI can list them with their
problems instead of silently hiding a workflow.

`Catalog.resolve()` is the one place that decides which version runs:
"latest" is the live version, else the highest published one, never a draft; a number pins
that version; a draft runs only when pinned and only where the caller allows drafts (the
CLI and TUI, not the API or triggers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck import settings
from flowdeck.definition.durations import parse_duration, wait_duration_seconds
from flowdeck.definition.model import (
    DEFAULT_CODE_TIMEOUT,
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_TIMEOUT,
    ActionStep,
    Branch,
    CodeStep,
    ConditionStep,
    FailStep,
    HttpStep,
    NoteStep,
    OutputStep,
    RetryPolicy,
    ScheduleTrigger,
    SourceRef,
    Step,
    WaitStep,
    WorkflowCallStep,
    WorkflowDefinition,
)
from flowdeck.definition.validation import (  # validate_paths: re-exported for `flowdeck validate`
    CheckedFile,
    Problem,
    check_paths,
    describe_versions,
    validate_paths,
)
from flowdeck.definition.yaml_source import DataPath, Position
from flowdeck.errors import NotRunnable, UnknownVersion, UnknownWorkflow

__all__ = [
    "DEFINITIONS_ENV",
    "Catalog",
    "DefinitionFile",
    "Problem",
    "validate_paths",
    "default_definitions_dir",
    "load_catalog",
    "build_definition",
]

DEFINITIONS_ENV = "FLOWDECK_DEFINITIONS"


@dataclass(frozen=True)
class DefinitionFile:
    """One file of the catalog, valid or not; the fields are None when they are unreadable."""

    path: str
    workflow_id: str | None
    version: int | None
    status: str | None
    name: str | None
    problems: tuple[Problem, ...]
    source_text: str

    @property
    def has_errors(self) -> bool:
        return any(problem.is_error for problem in self.problems)


@dataclass
class Catalog:
    """The definitions of one directory. Only files without errors become definitions."""

    definitions: list[WorkflowDefinition] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[DefinitionFile] = field(default_factory=list)
    directory: str = ""

    @property
    def has_errors(self) -> bool:
        return any(problem.is_error for problem in self.problems)

    def workflows(self) -> dict[str, list[WorkflowDefinition]]:
        """Valid definitions by workflow id (ids sorted), versions ascending."""
        grouped: dict[str, list[WorkflowDefinition]] = {}
        for definition in sorted(self.definitions, key=lambda each: (each.id, each.version)):
            grouped.setdefault(definition.id, []).append(definition)
        return grouped

    def resolve(
        self, workflow_id: str, version: str | int | None = "latest", *, allow_draft: bool
    ) -> WorkflowDefinition:
        """The definition to run for `workflow_id` at `version` ("latest", None, or a number).

        Raises UnknownWorkflow, UnknownVersion, or NotRunnable (a draft without
        `allow_draft`, nothing live or published for "latest", a version whose file has
        errors), each with a message that lists what exists.
        """
        files = [each for each in self.files if each.workflow_id == workflow_id]
        if not files:
            known = ", ".join(sorted({each.id for each in self.definitions})) or "none"
            raise UnknownWorkflow(
                f"unknown workflow '{workflow_id}'; known workflows: {known}",
                details={"workflow_id": workflow_id},
            )
        existing = f"workflow '{workflow_id}' has versions {describe_versions(files)}"
        if version is None or version == "latest":
            chosen = self._latest_file(files)
            if chosen is None:
                raise NotRunnable(
                    f"{existing}; 'latest' resolves to live or published versions only"
                    + ("; pin a draft by number from the CLI or TUI" if allow_draft else ""),
                    details={"workflow_id": workflow_id, "version": "latest"},
                )
        else:
            number = _version_number(version)
            if number is None:
                raise UnknownVersion(
                    f"version {version!r} of workflow '{workflow_id}' is neither 'latest' nor "
                    f"a version number; {existing}",
                    details={"workflow_id": workflow_id, "version": version},
                )
            matches = [each for each in files if each.version == number]
            if not matches:
                raise UnknownVersion(
                    f"workflow '{workflow_id}' has no version {number}; it has versions {describe_versions(files)}",
                    details={"workflow_id": workflow_id, "version": number},
                )
            chosen = next((each for each in matches if not each.has_errors), matches[0])
            if chosen.status == "draft" and not allow_draft:
                raise NotRunnable(
                    f"workflow '{workflow_id}' version {number} is a draft; drafts run only "
                    f"when pinned from the CLI or TUI ({existing})",
                    details={"workflow_id": workflow_id, "version": number},
                )
        definition = self._definition_of(chosen)
        if definition is None:
            raise NotRunnable(
                f"workflow '{workflow_id}' version {chosen.version} has validation errors "
                f"({chosen.path}); run `flowdeck validate {chosen.path}`",
                details={"workflow_id": workflow_id, "version": chosen.version},
            )
        return definition

    @staticmethod
    def _latest_file(files: list[DefinitionFile]) -> DefinitionFile | None:
        # Extra live versions carry an error; the valid live one (highest version) wins.
        live = [each for each in files if each.status == "live" and each.version is not None]
        if live:
            valid = [each for each in live if not each.has_errors]
            return max(valid or live, key=lambda each: each.version or 0)
        published = [each for each in files if each.status == "published" and each.version]
        return max(published, key=lambda each: each.version or 0) if published else None

    def _definition_of(self, item: DefinitionFile) -> WorkflowDefinition | None:
        for definition in self.definitions:
            if definition.path == item.path:
                return definition
        return None


def _version_number(version: str | int) -> int | None:
    if isinstance(version, bool):
        return None
    if isinstance(version, int):
        return version if version >= 1 else None
    if isinstance(version, str) and version.strip().isdigit():
        number = int(version.strip())
        return number if number >= 1 else None
    return None


def default_definitions_dir() -> Path:
    """`$FLOWDECK_DEFINITIONS`, else `./definitions` (read by `flowdeck.settings`)."""
    return settings.definitions_dir()


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Validate and load every definition under `directory` (recursively).

    Never raises for bad definitions: they appear in `problems` and `files`. A missing
    directory gives an empty catalog with one problem saying so.
    """
    root = Path(directory) if directory is not None else default_definitions_dir()
    catalog = Catalog(directory=str(root))
    if not root.is_dir():
        catalog.problems.append(
            Problem(
                str(root),
                1,
                1,
                "error",
                f"definitions directory not found; create it or set {DEFINITIONS_ENV}",
            )
        )
        return catalog
    for checked in check_paths([root]):
        definition = None
        if not checked.has_errors:
            try:
                definition = build_definition(checked)
            except (ValueError, OverflowError, RecursionError) as error:  # one broken file never hides the others
                message = f"flowdeck cannot load this file ({type(error).__name__}: {error})"
                checked.add("error", Position(1, 1), message)
            else:
                catalog.definitions.append(definition)
        catalog.problems.extend(checked.problems)
        catalog.files.append(_file_entry(checked, definition))
    catalog.problems.sort(key=Problem.sort_key)
    return catalog


def _file_entry(checked: CheckedFile, definition: WorkflowDefinition | None) -> DefinitionFile:
    name = checked.field("name")
    return DefinitionFile(
        path=checked.path,
        workflow_id=checked.workflow_id,
        version=checked.version,
        status=checked.status if checked.status in ("draft", "published", "live") else None,
        name=definition.name if definition else (name if isinstance(name, str) else checked.workflow_id),
        problems=tuple(checked.problems),
        source_text=checked.source_text,
    )


# --------------------------------------------------------------------------- building


def build_definition(checked: CheckedFile) -> WorkflowDefinition:
    """The model of a file that passed validation (the builder trusts the checks)."""
    return _Builder(checked).definition()


def _seconds(data: dict[str, Any], key: str, default: Any) -> Any:
    return parse_duration(data[key]) if key in data else default


class _Builder:
    def __init__(self, checked: CheckedFile) -> None:
        self.checked = checked
        self.data: dict[str, Any] = checked.data

    def source(self, path: DataPath) -> SourceRef:
        position = self.checked.at(path)
        return SourceRef(self.checked.path, position.line, position.col)

    def definition(self) -> WorkflowDefinition:
        data = self.data
        retries = data.get("retries") or {}
        return WorkflowDefinition(
            id=data["id"],
            version=data["version"],
            name=data.get("name") or data["id"],
            status=data.get("status", "draft"),
            steps=self.steps(data["steps"], ("steps",)),
            path=self.checked.path,
            description=data.get("description"),
            sync_timeout=_seconds(data, "sync_timeout", None),
            timeout=_seconds(data, "timeout", DEFAULT_TIMEOUT),
            retries=RetryPolicy(
                max_retries=retries.get("max_retries", 0),
                delay=_seconds(retries, "delay", 0.0),
                backoff=float(retries.get("backoff", 1.0)),
            ),
            input_schema=data.get("input", {"type": "object"}),
            triggers=tuple(
                ScheduleTrigger(
                    cron=trigger["cron"],
                    timezone=trigger.get("timezone", "UTC"),
                    input=trigger.get("input", {}),
                )
                for trigger in data.get("triggers", [])
            ),
        )

    def steps(self, items: list[dict[str, Any]], path: DataPath) -> tuple[Step, ...]:
        return tuple(self.step(item, path + (index,)) for index, item in enumerate(items))

    def step(self, data: dict[str, Any], path: DataPath) -> Step:
        common = {
            "id": data["id"],
            "name": data.get("name") or data["id"],
            "description": data.get("description"),
            "source": self.source(path),
        }
        kind = data["type"]
        if kind == "http":
            return HttpStep(
                **common,
                url=data["url"],
                method=data.get("method", "GET"),
                headers=data.get("headers"),
                query=data.get("query"),
                body=data.get("body"),
                timeout=_seconds(data, "timeout", DEFAULT_HTTP_TIMEOUT),
                fail_on_status=data.get("fail_on_status", True),
            )
        if kind == "code":
            return CodeStep(
                **common,
                code=data["code"],
                timeout=_seconds(data, "timeout", DEFAULT_CODE_TIMEOUT),
                memory_mb=data.get("memory_mb", 256),
            )
        if kind == "condition":
            return ConditionStep(
                **common,
                branches=tuple(
                    Branch(
                        name=branch["name"],
                        when=branch["when"],
                        steps=self.steps(branch.get("steps", []), path + ("branches", index, "steps")),
                        source=self.source(path + ("branches", index)),
                    )
                    for index, branch in enumerate(data["branches"])
                ),
                default=self.steps(data.get("default", []), path + ("default",)),
            )
        if kind == "wait":
            duration = data.get("duration")
            return WaitStep(
                **common,
                duration=wait_duration_seconds(duration) if duration is not None else None,
                until=data.get("until"),
            )
        if kind == "output":
            return OutputStep(**common, fields=data.get("fields", {}))
        if kind == "fail":
            return FailStep(**common, message=data.get("message", "failed"))
        if kind == "note":
            return NoteStep(**common, text=data.get("text", ""))
        if kind == "action":
            return ActionStep(**common, uses=data["uses"], with_=data.get("with", {}))
        if kind == "workflow":
            return WorkflowCallStep(
                **common,
                workflow_id=data["workflow_id"],
                version=data.get("version", "latest"),
                input=data.get("input"),
            )
        raise AssertionError(f"validation let an unknown step type through: {kind!r}")
