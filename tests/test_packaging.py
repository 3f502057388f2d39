"""A non-editable install works on its own: `pip install .` into a fresh environment, then
`flowdeck validate` on definitions outside the repository (the schema ships in the package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from support.paths import EXAMPLE_DEFINITIONS

ROOT = Path(__file__).resolve().parent.parent


def validate(venv: Path, definitions: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`flowdeck validate` as the environment `venv` installed it, run from `cwd`."""
    return subprocess.run(
        [str(venv / "bin" / "flowdeck"), "validate", str(definitions)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_a_non_editable_install_validates_definitions_outside_the_repository(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # flowdeck's dependencies come from the suite's environment (a path, not its .pth files,
    # so its editable flowdeck stays out); flowdeck itself is built and installed for real.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    installed = site / "flowdeck"
    assert (installed / "schemas" / "workflow.schema.json").is_file()
    assert not (site / "flows").exists() and not (site / "tui").exists()

    definitions = tmp_path / "elsewhere" / "definitions"
    shutil.copytree(EXAMPLE_DEFINITIONS, definitions)
    shutil.copytree(ROOT / "schemas", tmp_path / "elsewhere" / "schemas")
    done = validate(venv, definitions, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 error(s)" in done.stderr, done.stdout + done.stderr

    broken = definitions / "broken.yaml"
    broken.write_text("id: broken\nversion: 1\nstatus: draft\nsteps: []\nname: 3\n")
    done = validate(venv, definitions, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{broken}:" in done.stdout and "error" in done.stdout


def test_every_package_folder_is_declared_for_installation() -> None:
    """pyproject lists the packages by import name (folder and import names differ, so
    setuptools cannot find them): a new package folder must be listed, or a non-editable
    install leaves it out."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == declared, f"declare {sorted(found - declared)}; remove {sorted(declared - found)}"
