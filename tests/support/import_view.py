"""A tree of links named like the import name, for tools that find modules by path.

The folders keep the product's names (`flows/` the engine, `tui/` the dashboard, `schemas/`)
while everything imports as `flowdeck` (pyproject's `package-dir`). Python finds the code
through setuptools' import hook; mypy and import-linter (grimp) walk directories instead and
would see `flows.*`, or no `flowdeck.tui` at all. `build(root, into)` lays out
`into/flowdeck/` as links to the real files, so both tools see exactly the installed names,
and `real_path` turns a path they report back into the repository's own.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DIRS", "build", "real_path"]

# import name -> folder in the repository (the same mapping as pyproject's package-dir)
PACKAGE_DIRS = {"flowdeck": "flows", "flowdeck.tui": "tui", "flowdeck.schemas": "schemas"}


def build(root: Path, into: Path) -> Path:
    """Lay out `into/flowdeck` as links into `root`; returns `into` (put it on the path)."""
    for name, folder in PACKAGE_DIRS.items():
        target = into.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in sorted((root / folder).iterdir()):
            if entry.name == "__pycache__" or entry.name.startswith("."):
                continue
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return into


def real_path(reported: str, root: Path, view: Path) -> str:
    """A path as mypy prints it in the view, as it is in the repository."""
    prefix = str(view) + "/"
    relative = reported[len(prefix) :] if reported.startswith(prefix) else reported
    parts = relative.split("/")
    for name in sorted(PACKAGE_DIRS, key=len, reverse=True):
        name_parts = name.split(".")
        if parts[: len(name_parts)] == name_parts:
            return str(Path(PACKAGE_DIRS[name], *parts[len(name_parts) :]))
    return reported
