"""The guardrails, run with every test run: ruff, mypy, the import-linter layer contracts,
and what importing the lower layers loads.

CONTRIBUTING.md explains the layers these check. mypy and import-linter find modules by
path, so they run in a tree of links named `flowdeck` (tests/support/import_view.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import import_view

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SOURCES = ["flows", "tui", "schemas", "tests", "bench"]


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_view.build(ROOT, tmp_path_factory.mktemp("import-view"))


def _run(command: list[str], cwd: Path, env_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    done = _run([str(BIN / "ruff"), "check", "--no-cache", *SOURCES], cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_layer_contracts_hold(view: Path) -> None:
    done = _run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=view, env_path=view)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean(view: Path) -> None:
    cache = ROOT / ".mypy_cache"
    done = _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache),
            "-p",
            "flowdeck",
        ],
        cwd=view,
    )
    report = "\n".join(
        import_view.real_path(line.split(":", 1)[0], ROOT, view) + ":" + line.split(":", 1)[1] if ":" in line else line
        for line in done.stdout.splitlines()
    )
    assert done.returncode == 0, report + done.stderr


@pytest.mark.parametrize(
    "modules",
    [
        ["flowdeck.definition", "flowdeck.definition.catalog", "flowdeck.definition.validation"],
        ["flowdeck.runtime", "flowdeck.runtime.interpreter", "flowdeck.runtime.inputs"],
    ],
)
def test_definition_and_runtime_load_neither_prefect_nor_textual(modules: list[str]) -> None:
    """What the contracts say statically, at run time: an offline tool (validate, the
    interpreter) starts without Prefect's 0.65 s import or Textual."""
    program = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"prefect", "textual", "textual_serve", "fastapi", "uvicorn"}, loaded


def test_nothing_installs_the_top_level_names_flows_or_tui() -> None:
    """A Prefect project keeps its own code in `flows/`: flowdeck must not shadow it."""
    program = (
        "import importlib.metadata as m\n"
        "files = m.distribution('flowdeck').read_text('top_level.txt') or ''\n"
        "print(files)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) <= {"flowdeck"}, done.stdout
    for name in ("flows", "tui"):
        probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd="/")
        assert probe.returncode != 0, f"`import {name}` works outside the repository"
