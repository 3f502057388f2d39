"""Published versions are frozen: `versions.lock` records what each one contained.

A version that is published or live may be running, scheduled or called by other workflows;
changing its file changes what those executions do under an unchanged version number. The
lock file (JSON, next to the definitions, committed with them) keeps a fingerprint of each
published and live version; `flowdeck validate` reports a file whose content no longer
matches, and `flowdeck promote` / `flowdeck freeze` add entries. An entry is never
rewritten: a change goes into a new version (`flowdeck version new`).

The fingerprint is the parsed YAML minus `status` (promoting published -> live changes only
that), as canonical JSON: comments and layout do not count, anything the engine reads does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.definition.validation.report import CheckedFile
from flowdeck.definition.yaml_source import Position

__all__ = ["LOCK_FILE", "MAX_LOCK_BYTES", "VersionLock", "check_frozen", "fingerprint", "lock_for"]

LOCK_FILE = "versions.lock"
MAX_LOCK_BYTES = 4 * 1024 * 1024
FROZEN_STATUSES = ("published", "live")
_ABOUT = (
    "Fingerprints of published and live workflow versions (flowdeck validate checks them; "
    "flowdeck promote and flowdeck freeze add them). Do not edit: change a new version instead."
)


def fingerprint(data: dict[str, Any]) -> str:
    """What a version contains, without its status: `sha256:<hex>` of canonical JSON."""
    content = {key: value for key, value in data.items() if key != "status"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key(workflow_id: Any, version: Any) -> str:
    return f"{workflow_id}@{version}"


@dataclass
class VersionLock:
    """One `versions.lock`: `entries` maps `workflow@version` to its fingerprint."""

    path: Path
    entries: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why the file could not be read, if it could not

    @classmethod
    def read(cls, path: Path) -> VersionLock:
        lock = cls(path)
        try:
            if path.stat().st_size > MAX_LOCK_BYTES:
                lock.problem = f"larger than {MAX_LOCK_BYTES // (1024 * 1024)} MiB"
                return lock
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return lock
        except (OSError, UnicodeDecodeError, ValueError) as error:
            lock.problem = f"not readable JSON ({error})"
            return lock
        versions = data.get("versions") if isinstance(data, dict) else None
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            lock.problem = 'expected {"versions": {"workflow@version": "sha256:..."}}'
            return lock
        lock.entries = dict(versions)
        return lock

    def recorded(self, workflow_id: Any, version: Any) -> str | None:
        return self.entries.get(_key(workflow_id, version))

    def with_entries(self, items: Iterable[tuple[Any, Any, str]]) -> VersionLock:
        """A copy with the entries of `items` added; existing entries are kept as they are."""
        entries = dict(self.entries)
        for workflow_id, version, print_ in items:
            entries.setdefault(_key(workflow_id, version), print_)
        return VersionLock(self.path, entries)

    def text(self) -> str:
        body = {"about": _ABOUT, "versions": dict(sorted(self.entries.items()))}
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def lock_for(path: str | Path, root: str | Path | None = None) -> Path:
    """The `versions.lock` that governs `path`: the nearest one in its directory or above
    (up to `root`, when given); with none, where a new one goes (`root`, else its directory)."""
    start = Path(path).resolve()
    directory = start if start.is_dir() else start.parent
    stop = Path(root).resolve() if root is not None else None
    for candidate in (directory, *directory.parents):
        if (candidate / LOCK_FILE).is_file():
            return candidate / LOCK_FILE
        if stop is not None and candidate == stop:
            break
    return (stop or directory) / LOCK_FILE


def check_frozen(files: list[CheckedFile]) -> None:
    """An error on each published or live version whose content differs from its lock entry."""
    locks: dict[Path, VersionLock] = {}
    for item in files:
        data = item.document.data if item.document is not None else None
        if not isinstance(data, dict) or data.get("status") not in FROZEN_STATUSES:
            continue
        path = lock_for(item.path)
        if path not in locks:
            locks[path] = VersionLock.read(path)
        lock = locks[path]
        if lock.problem is not None:
            item.add("error", Position(1, 1), f"{path}: {lock.problem}; restore it from version control")
            lock.problem = None  # said once, on the first file it governs
            continue
        recorded = lock.recorded(data.get("id"), data.get("version"))
        if recorded is None or recorded == fingerprint(data):
            continue
        assert item.document is not None
        where = item.document.position_of(("version",)) if "version" in data else Position(1, 1)
        item.add(
            "error",
            where,
            f"'{data.get('id')}' version {data.get('version')} is {data.get('status')} and its content changed "
            f"since it was published ({path.name} has another fingerprint): published versions are frozen; "
            f"undo the change, or make it in a new version (`flowdeck version new {data.get('id')}`)",
        )
