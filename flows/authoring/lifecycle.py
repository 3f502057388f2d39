"""The version lifecycle in the files: `version new` (the next draft) and `promote`.

The rules (docs/definitions.md): `draft` runs only pinned, `published` runs by number (and as
`latest` when nothing is live), `live` is `latest`, at most one per workflow id. Promotion
moves forward only (draft -> published -> live); promoting a version to live turns the
live one into published. A file with validation errors is never promoted.

Edits change only the value of a top-level key (`status:`, `version:`), in place: the YAML
is parsed with the round-trip loader for the positions and the text around is left byte
for byte, comments, quoting and layout included.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from flowdeck.definition.catalog import Catalog, DefinitionFile
from flowdeck.definition.validation import describe_versions
from flowdeck.definition.validation.frozen import FROZEN_STATUSES, VersionLock, fingerprint, lock_for
from flowdeck.definition.yaml_source import parse_yaml
from flowdeck.errors import ConfigurationError, NotRunnable, UnknownVersion, UnknownWorkflow

PROMOTE_TO = ("published", "live")
_ORDER = {"draft": 0, "published": 1, "live": 2}
_TOKEN = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\s#,}\]]+")
_VERSION_FILE = re.compile(r"^v(\d+)(\.ya?ml)$")


@dataclass(frozen=True)
class Change:
    """One file to write: `path` gets `text`; `summary` says what changed."""

    path: str
    text: str
    summary: str


def set_top_level(text: str, key: str, value: str) -> str:
    """`text` with the top-level `key` set to the plain scalar `value`, nothing else touched.

    A missing key is added on the line after `version:` (else `id:`), indented the same.
    """
    document = parse_yaml(text)
    if not isinstance(document.data, dict):
        raise ConfigurationError("the file is not a YAML mapping")
    lines = text.splitlines(keepends=True)
    if key in document.data:
        position = document.position_of((key,))
        line = lines[position.line - 1]
        match = _TOKEN.match(line, position.col - 1)
        end = match.end() if match else position.col - 1
        lines[position.line - 1] = line[: position.col - 1] + value + line[end:]
        return "".join(lines)
    anchor = next((name for name in ("version", "id") if name in document.data), None)
    if anchor is None:
        raise ConfigurationError(f"the file has no top-level 'version' or 'id' to put '{key}' after")
    key_position = document.key_position_of((anchor,))
    newline = "\r\n" if lines[key_position.line - 1].endswith("\r\n") else "\n"
    lines.insert(key_position.line, " " * (key_position.col - 1) + f"{key}: {value}{newline}")
    return "".join(lines)


def _read(item: DefinitionFile) -> str:
    """The file as it is on disk, line endings included (the catalog's copy has them translated)."""
    try:
        with open(item.path, encoding="utf-8", newline="") as stream:
            return stream.read()
    except OSError as error:
        raise ConfigurationError(f"cannot read {item.path}: {error.strerror or error}") from None


def _files_of(catalog: Catalog, workflow_id: str) -> list[DefinitionFile]:
    files = [each for each in catalog.files if each.workflow_id == workflow_id]
    if not files:
        known = ", ".join(sorted({each.workflow_id for each in catalog.files if each.workflow_id})) or "none"
        raise UnknownWorkflow(f"unknown workflow '{workflow_id}'; known workflows: {known}")
    return files


def next_version(catalog: Catalog, workflow_id: str) -> Change:
    """A copy of the highest version as the next version number, a draft."""
    files = [each for each in _files_of(catalog, workflow_id) if each.version is not None]
    if not files:
        raise NotRunnable(f"no file of workflow '{workflow_id}' has a readable version number")
    source = max(files, key=lambda each: each.version or 0)
    number = (source.version or 0) + 1
    path = Path(source.path)
    numbered = _VERSION_FILE.match(path.name)
    target = path.with_name(f"v{number}{numbered.group(2)}" if numbered else f"{path.stem}.v{number}{path.suffix}")
    if target.exists():
        raise ConfigurationError(f"{target} exists already; move it away or edit it")
    text = set_top_level(set_top_level(_read(source), "version", str(number)), "status", "draft")
    return Change(str(target), text, f"{workflow_id} v{number}: new draft, a copy of v{source.version} ({target})")


def promote(catalog: Catalog, workflow_id: str, version: int, to: str) -> list[Change]:
    """The edits that give `version` the status `to` (and demote the live one for `live`)."""
    if to not in PROMOTE_TO:
        raise ConfigurationError(f"--to {to!r}: promote to one of {', '.join(PROMOTE_TO)}")
    files = _files_of(catalog, workflow_id)
    matches = [each for each in files if each.version == version]
    if not matches:
        raise UnknownVersion(
            f"workflow '{workflow_id}' has no version {version}; it has versions {describe_versions(files)}"
        )
    if len(matches) > 1:
        paths = ", ".join(each.path for each in matches)
        raise NotRunnable(f"workflow '{workflow_id}' version {version} is defined twice ({paths}); keep one")
    chosen = matches[0]
    if chosen.has_errors:
        raise NotRunnable(
            f"workflow '{workflow_id}' version {version} has validation errors ({chosen.path}); "
            f"fix them first: `flowdeck validate {chosen.path}`"
        )
    current = chosen.status or "draft"
    if current == to:
        raise NotRunnable(f"workflow '{workflow_id}' version {version} is already {to}")
    if _ORDER[current] > _ORDER[to]:
        raise NotRunnable(
            f"workflow '{workflow_id}' version {version} is {current}: promote moves forward only "
            "(draft -> published -> live); promote another version to live and this one "
            "becomes published"
        )
    changes = [
        Change(
            chosen.path,
            set_top_level(_read(chosen), "status", to),
            f"{workflow_id} v{version}: {current} -> {to} ({chosen.path})",
        )
    ]
    if to == "live":
        for other in files:
            if other is not chosen and other.status == "live":
                changes.append(
                    Change(
                        other.path,
                        set_top_level(_read(other), "status", "published"),
                        f"{workflow_id} v{other.version}: live -> published ({other.path})",
                    )
                )
    return [*changes, *_lock_changes(catalog, changes)]


def freeze(catalog: Catalog) -> list[Change]:
    """Record every published and live version that `versions.lock` does not hold yet."""
    files = [each for each in catalog.files if each.status in FROZEN_STATUSES and not each.has_errors]
    return _lock_changes(catalog, [Change(each.path, _read(each), "") for each in files])


def _lock_changes(catalog: Catalog, changes: list[Change]) -> list[Change]:
    """The `versions.lock` edits that record the frozen versions among `changes` (their new
    text): one change per lock file, none where every entry is already there."""
    additions: dict[Path, list[tuple[object, object, str]]] = {}
    for change in changes:
        data = parse_yaml(change.text).data
        if not isinstance(data, dict) or data.get("status") not in FROZEN_STATUSES:
            continue
        path = lock_for(change.path, root=catalog.directory or None)
        additions.setdefault(path, []).append((data.get("id"), data.get("version"), fingerprint(data)))
    planned = []
    for path, items in additions.items():
        lock = VersionLock.read(path)
        if lock.problem is not None:
            raise ConfigurationError(f"{path}: {lock.problem}; restore it from version control")
        updated = lock.with_entries(items)
        if updated.entries != lock.entries:
            added = len(updated.entries) - len(lock.entries)
            shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
            planned.append(Change(shown, updated.text(), f"{shown}: recorded {added} frozen version(s)"))
    return planned


def write(changes: list[Change]) -> None:
    """Write each file whole (a temporary file renamed over it): never half a file."""
    for change in changes:
        target = Path(change.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            os.chmod(temporary, mode)
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                stream.write(change.text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
