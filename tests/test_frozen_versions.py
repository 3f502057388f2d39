"""Published versions are frozen: versions.lock, `flowdeck freeze`, `promote` and `validate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.cli import run_cli

FIXTURES = Path(__file__).parent / "sync_definitions"


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    target = tmp_path / "definitions"
    shutil.copytree(FIXTURES, target)
    return target


def _published(definitions: Path) -> Path:
    for path in sorted(definitions.rglob("*.yaml")):
        if "\nstatus: published" in path.read_text() or "\nstatus: live" in path.read_text():
            return path
    raise AssertionError("the fixtures have no published version")


def test_freeze_records_every_published_and_live_version_once(definitions: Path) -> None:
    done = run_cli("freeze", "--definitions", str(definitions))
    assert done.returncode == 0, done.stderr
    lock = json.loads((definitions / "versions.lock").read_text())
    assert lock["versions"] and all(value.startswith("sha256:") for value in lock["versions"].values())
    again = run_cli("freeze", "--definitions", str(definitions))
    assert again.returncode == 0 and "already recorded" in again.stdout
    assert json.loads((definitions / "versions.lock").read_text()) == lock


def test_validate_reports_a_published_version_whose_content_changed(definitions: Path) -> None:
    run_cli("freeze", "--definitions", str(definitions))
    path = _published(definitions)
    assert run_cli("validate", str(definitions)).returncode == 0
    from flowdeck.authoring.lifecycle import set_top_level

    path.write_text(set_top_level(path.read_text(), "name", "Changed") + "# a comment does not count\n")
    done = run_cli("validate", str(definitions))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{path}:" in done.stdout and "published versions are frozen" in done.stdout
    assert "flowdeck version new" in done.stdout


def test_comments_layout_and_the_status_do_not_count(definitions: Path) -> None:
    run_cli("freeze", "--definitions", str(definitions))
    path = _published(definitions)
    path.write_text("# reformatted\n" + path.read_text().replace("status: published", "status: live"))
    done = run_cli("validate", str(definitions))
    assert "frozen" not in done.stdout, done.stdout


def test_promote_records_the_promoted_version(definitions: Path) -> None:
    drafts = [p for p in sorted(definitions.rglob("*.yaml")) if "\nstatus: draft" in p.read_text()]
    if not drafts:
        pytest.skip("no draft among the fixtures")
    from flowdeck.definition.yaml_source import parse_yaml

    data = parse_yaml(drafts[0].read_text()).data
    done = run_cli("promote", data["id"], str(data["version"]), "--to", "published", "--definitions", str(definitions))
    assert done.returncode == 0, done.stdout + done.stderr
    lock = json.loads((definitions / "versions.lock").read_text())
    assert f"{data['id']}@{data['version']}" in lock["versions"]


def test_a_broken_lock_file_is_an_error_that_says_what_to_do(definitions: Path) -> None:
    (definitions / "versions.lock").write_text("{not json")
    done = run_cli("validate", str(definitions))
    assert done.returncode == 1 and "versions.lock: not readable JSON" in done.stdout, done.stdout
