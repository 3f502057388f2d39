"""The suite never depends on what a user keeps in definitions/: it reads its own copy of
the examples (support.paths.EXAMPLE_DEFINITIONS, exactly support.paths.EXAMPLE_FILES)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import EXAMPLE_DEFINITIONS, EXAMPLE_FILES, ROOT, copy_examples

# A workflow of a user's own, with a warning (a long wait) and a test file of its own: if it
# leaked into the suite's definitions, the tests below that look at every example would see it.
USER_WORKFLOW = """# yaml-language-server: $schema=../schemas/workflow.schema.json
id: my_own_flow
name: Mine
version: 1
status: live
steps:
  - {id: pause, type: wait, duration: 2h}
  - {id: done, type: output, fields: {ok: true}}
"""

# the tests that read every example (they asserted the exact set before the copy existed)
EXAMPLE_READERS = [
    "tests/test_schema_editor.py",
    "tests/test_validation.py::test_the_examples_have_no_errors",
    "tests/test_definitions.py::test_loading_the_examples_is_fast",
    "tests/test_prefect_yaml.py::test_prefect_yaml_deployments_match_the_published_and_live_versions",
]


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_the_suite_reads_its_own_copy_of_exactly_the_examples() -> None:
    assert os.environ["FLOWDECK_DEFINITIONS"] == str(EXAMPLE_DEFINITIONS)
    assert files_under(EXAMPLE_DEFINITIONS) == set(EXAMPLE_FILES)
    for name in EXAMPLE_FILES:  # kept identical to definitions/ (copied at session start)
        assert (EXAMPLE_DEFINITIONS / name).read_bytes() == (ROOT / "definitions" / name).read_bytes(), name


def test_a_user_workflow_is_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", source)
    (source / "mine.yaml").write_text(USER_WORKFLOW)
    target = copy_examples(source, tmp_path / "copy")
    assert files_under(target) == set(EXAMPLE_FILES)


def test_a_missing_example_is_named(tmp_path: Path) -> None:
    import pytest

    source = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", source)
    (source / "hello.yaml").unlink()
    with pytest.raises(RuntimeError, match="hello.yaml"):
        copy_examples(source, tmp_path / "copy")


def test_no_test_reads_the_repository_definitions_directly() -> None:
    direct = re.compile(r"""ROOT\s*/\s*["']definitions["']""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != Path(__file__).name and direct.search(path.read_text())
    ]
    assert offenders == ["tests/support/paths.py"]


def test_adding_a_workflow_to_definitions_leaves_the_suite_green(tmp_path: Path) -> None:
    """The tests that look at every example, in a fresh pytest, with definitions/ holding a
    workflow and a test file of the user's own."""
    source = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", source)
    (source / "mine.yaml").write_text(USER_WORKFLOW)
    (source / "mine.test.yaml").write_text("workflow: my_own_flow\ncases: []\n")
    (tmp_path / "schemas").symlink_to(ROOT / "schemas", target_is_directory=True)
    env = {**os.environ, "FLOWDECK_TEST_EXAMPLES_SOURCE": str(source)}
    env.pop("FLOWDECK_DEFINITIONS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *EXAMPLE_READERS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
