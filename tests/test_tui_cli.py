"""The CLI's side of the dashboard issue: `flowdeck status --json` answers errors as JSON (on stderr),
`flowdeck list` into a pipe keeps whole paths, an async run names the `flowdeck tui
--execution` command, and `flowdeck tui` takes --execution / --workflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import run_cli

LONG = "a_workflow_with_a_rather_long_name_for_its_file"
WORKFLOW = f"""id: {LONG}
name: Long
version: 1
status: published
steps:
  - {{id: done, type: output, fields: {{ok: true}}}}
"""
WAITS = """id: waits_a_while
name: Waits
version: 1
status: published
steps:
  - {id: nap, type: wait, duration: 10m}
"""


@pytest.mark.parametrize("execution_id", ["exec_" + "0" * 32, "not-an-id"])
def test_status_json_prints_its_error_as_json(prefect_api: str, execution_id: str) -> None:
    result = run_cli("status", execution_id, "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    body = json.loads(result.stderr)
    assert body["error"]["code"] == "unknown_execution"
    assert execution_id in body["error"]["message"] and "exec_<32 hex>" in body["error"]["message"]


def test_status_json_when_prefect_cannot_be_reached_is_json_too() -> None:
    result = run_cli("status", "exec_" + "0" * 32, "--json", env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert json.loads(result.stderr)["error"]["code"] == "prefect_unavailable"


def test_list_into_a_pipe_keeps_whole_paths(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "deeply" / "nested" / "definitions" / "directory" / "of" / "this" / "team"
    deep.mkdir(parents=True)
    (deep / f"{LONG}.yaml").write_text(WORKFLOW)
    result = run_cli("list", "--definitions", str(deep))  # stdout is a pipe here
    assert result.returncode == 0, result.stderr
    path = str(deep / f"{LONG}.yaml")
    assert len(path) > 80
    assert path in result.stdout  # on one line, not folded or cut at 80 columns


def test_an_async_run_names_the_dashboard_command(prefect_api: str, tmp_path: Path) -> None:
    (tmp_path / "waits.yaml").write_text(WAITS)
    result = run_cli("run", "waits_a_while", "--async", "--definitions", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    execution_id = result.stdout.split()[1]
    assert f"watch it live: flowdeck tui --execution {execution_id}" in result.stdout
    run_cli("cancel", execution_id)


def test_tui_takes_execution_and_workflow() -> None:
    result = run_cli("tui", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "--execution" in result.stdout and "--workflow" in result.stdout


def test_every_json_command_answers_errors_in_the_same_envelope(tmp_path: Path) -> None:
    """One format for scripts: `run --json` refusing its input says so as the same envelope."""
    result = run_cli("run", "hello", "--json", "--input", '{"name": NaN}')
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    error = json.loads(result.stderr)["error"]
    assert error["code"] and "NaN" in error["message"] or "JSON" in error["message"], error
    missing = run_cli("run", "no_such_workflow", "--json")
    assert missing.returncode == 2 and json.loads(missing.stderr)["error"]["code"] == "unknown_workflow"
