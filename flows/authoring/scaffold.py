"""`flowdeck new`: a workflow definition and a test file that passes, from a template.

Templates live in `templates/` (package data): `<template>.yaml` and `<template>.test.yaml`,
with `{id}`, `{name}`, `{schema}`, `{test_schema}` and `{test_path}` filled in. The schema
modelines point at the repository's `schemas/` when the definitions directory is inside
one (relative, as editors want them), else at the installed copy.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from flowdeck.authoring.lifecycle import Change
from flowdeck.definition.catalog import Catalog
from flowdeck.errors import ConfigurationError

TEMPLATES = ("http", "branching", "follow-up")
_WORKFLOW_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def new_workflow(catalog: Catalog, directory: Path, workflow_id: str, template: str = "http") -> list[Change]:
    """The definition `<directory>/<id>.yaml` and its test `<id>.test.yaml` (refused if taken)."""
    if not _WORKFLOW_ID.match(workflow_id):
        raise ConfigurationError(
            f"workflow id {workflow_id!r}: use lower case letters, digits and '_', starting "
            "with a letter, at most 64 characters (e.g. lookup_contact)"
        )
    if template not in TEMPLATES:
        raise ConfigurationError(f"--template {template!r}: use one of {', '.join(TEMPLATES)}")
    taken = [each.path for each in catalog.files if each.workflow_id == workflow_id]
    if taken:
        raise ConfigurationError(
            f"workflow '{workflow_id}' exists already ({', '.join(taken)}); "
            f"`flowdeck version new {workflow_id}` starts its next version"
        )
    definition = directory / f"{workflow_id}.yaml"
    test = directory / f"{workflow_id}.test.yaml"
    for path in (definition, test):
        if path.exists():
            raise ConfigurationError(f"{path} exists already; choose another id or move the file")
    values = {
        "{id}": workflow_id,
        "{name}": workflow_id.replace("_", " ").capitalize(),
        "{schema}": schema_reference(directory, "workflow.schema.json"),
        "{test_schema}": schema_reference(directory, "workflow-test.schema.json"),
        "{test_path}": str(test),
    }
    return [
        Change(str(definition), _fill(f"{template}.yaml", values), f"{definition}: '{workflow_id}' v1, a draft"),
        Change(str(test), _fill(f"{template}.test.yaml", values), f"{test}: its tests"),
    ]


def schema_reference(directory: Path, name: str) -> str:
    """The schema's path relative to `directory`: the repository's `schemas/`, else the installed one."""
    start = directory.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "schemas" / name
        if candidate.is_file():
            return Path(os.path.relpath(candidate, start)).as_posix()
    installed = Path(str(resources.files("flowdeck.schemas").joinpath(name)))
    return Path(os.path.relpath(installed, start)).as_posix()


def _fill(name: str, values: dict[str, str]) -> str:
    text = resources.files("flowdeck.authoring").joinpath("templates", name).read_text(encoding="utf-8")
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
