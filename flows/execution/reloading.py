"""When to load a definitions directory again: the worker and the API follow the files.

A file added, edited or removed changes the directory's stamp (each definition file's path,
modification time and size); a process that sees a new stamp loads the catalog again, so
a new file is runnable and a deleted one is unknown without a restart. `DefinitionsWatch`
looks at most every `interval` seconds (a directory walk per API request would cost more
than the request).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DefinitionsWatch", "Stamp", "stamp"]

Stamp = tuple[tuple[str, int, int], ...]


def stamp(directory: str | Path) -> Stamp:
    """Every *.yaml / *.yml file below `directory` with its mtime and size."""
    found = []
    root = Path(directory)
    for path in [*root.rglob("*.yaml"), *root.rglob("*.yml")]:
        try:
            info = path.stat()
        except OSError:
            continue  # removed while we looked: the next look sees it gone
        found.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(sorted(found))


@dataclass
class DefinitionsWatch:
    directory: str | Path
    interval: float = 1.0
    _stamp: Stamp = field(default=(), init=False)
    _looked_at: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self._stamp = stamp(self.directory)
        self._looked_at = time.monotonic()

    def changed(self) -> bool:
        """The files changed since the last look that said so (looks at most every `interval`)."""
        now = time.monotonic()
        if now - self._looked_at < self.interval:
            return False
        self._looked_at = now
        current = stamp(self.directory)
        if current == self._stamp:
            return False
        self._stamp = current
        return True
