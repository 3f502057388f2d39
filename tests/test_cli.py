"""`flowdeck run` and `flowdeck status` as a user runs them: subprocesses, real Prefect.

Each run that reaches Prefect costs a process start (~2 s), so these are few; the step
semantics are covered in process by test_sync.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli

from flowdeck.store import read_model
from flowdeck.store.prefect_api import PrefectAPI

DEFINITIONS = Path(__file__).parent / "sync_definitions"
ENV = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
EXEC_ID = re.compile(r"^exec_[0-9a-f]{32}$")


def flowdeck(*args: str) -> Any:
    result = run_cli(*args, env=ENV)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_json(*args: str, code: int) -> dict[str, Any]:
    result = flowdeck("run", *args, "--json")
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    body = json.loads(result.stdout)
    assert EXEC_ID.match(body["execution_id"]), body
    return body


def status_json(execution_id: str) -> dict[str, Any]:
    """`flowdeck status EXECUTION_ID --json` from another process than the one that ran it."""
    result = flowdeck("status", execution_id, "--json")
    assert result.returncode == 0, result.stderr
    polled = json.loads(result.stdout)
    assert polled["execution_id"] == execution_id
    assert polled["mode"] == "sync"
    return polled


def prefect_view(api_url: str, execution_id: str, expected_steps: int) -> tuple[Any, list[str]]:
    """The flow run and its task-run names (events: polled for a few seconds)."""

    async def go() -> tuple[Any, list[str]]:
        async with PrefectAPI(api_url) as api:
            flow_run = await read_model.read_flow_run(api, execution_id)
            flow_run_id = flow_run.id
            deadline = time.monotonic() + 8
            while True:
                task_runs = await api.read_task_runs(flow_run_id)
                if len(task_runs) >= expected_steps or time.monotonic() > deadline:
                    return flow_run, [t.name for t in task_runs]
                await asyncio.sleep(0.1)

    return asyncio.run(go())


def test_success_exit_0_and_status_finds_it(prefect_api: str, tmp_path: Path) -> None:
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps({"prices": [2, 5.5, 1]}))
    body = run_json("sd_code", "--input-file", str(input_file), code=0)
    assert body == {
        "status": "success",
        "execution_id": body["execution_id"],
        "output": {
            "total": 8.5,
            "count": 3,
            "summary": "3 items, max 5.5",
            "whole": {"total": 8.5, "count": 3, "max": 5.5},
        },
    }

    # The process exited: its flow run, final state and task runs are all in Prefect.
    flow_run, steps = prefect_view(prefect_api, body["execution_id"], 2)
    assert flow_run.name == "sd_code v1"
    assert set(flow_run.tags) >= {"flowdeck", "workflow:sd_code", "version:1", "mode:sync"}
    assert flow_run.state.type.value == "COMPLETED"
    assert sorted(steps) == ["Compute total", "answer"]

    polled = status_json(body["execution_id"])
    assert polled["status"] == "success"
    assert (polled["workflow_id"], polled["workflow_version"]) == ("sd_code", 1)
    assert polled["output"] == body["output"]


def test_failed_exit_1_and_status_finds_the_error(prefect_api: str) -> None:
    body = run_json("sd_fail", "--input", '{"company": "Globex", "budget": 12}', code=1)
    assert body == {
        "status": "failed",
        "execution_id": body["execution_id"],
        "error": {"step_name": "Reject lead", "message": "no budget for Globex (12 EUR)"},
    }
    flow_run, steps = prefect_view(prefect_api, body["execution_id"], 2)
    assert flow_run.state.type.value == "FAILED"
    assert sorted(steps) == ["Reject lead", "intro"]

    polled = status_json(body["execution_id"])
    assert polled["status"] == "failed"
    assert polled["error"] == body["error"]


def test_version_resolution(prefect_api: str) -> None:
    # three independent runs: started together, each still a separate `flowdeck run`
    with ThreadPoolExecutor(3) as pool:
        live, published, draft = pool.map(
            lambda args: flowdeck("run", *args),
            [
                ["sd_ver", "--json"],  # latest: the live version, not the higher draft
                ["sd_pub", "--version", "latest", "--json"],  # nothing live: highest published
                ["sd_draft", "--version", "1"],  # a draft runs when pinned; human output
            ],
        )
    for result in (live, published, draft):
        assert result.returncode == 0, (result.stdout, result.stderr)
    assert json.loads(live.stdout)["output"] == {"version": 2, "status": "live"}
    assert json.loads(published.stdout)["output"] == {"version": 2, "status": "published"}
    assert re.search(r"success\s+exec_[0-9a-f]{32}", draft.stdout), draft.stdout
    assert '"status": "draft"' in draft.stdout and '"version": 1' in draft.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sd_nope"], ["unknown workflow 'sd_nope'", "sd_code"]),
        (["sd_ver", "--version", "7"], ["has no version 7", "1 (published)", "2 (live)", "3 (draft)"]),
        (["sd_draft"], ["'latest' resolves to live or published versions only", "1 (draft)"]),
        (["sd_typing", "--input", '{"n": "three"}'], ["n: 'three' is not of type 'integer'"]),
        (["sd_typing", "--input", "{}"], ["n: is required"]),
        (["sd_typing", "--input", '{"n": 3'], ["--input is not valid JSON"]),
        (["sd_typing", "--input", "[1, 2]"], ["must be a JSON object"]),
        (
            ["sd_typing", "--input-file", "/nonexistent/input.json"],
            ["cannot read --input-file /nonexistent/input.json"],
        ),
    ],
    ids=[
        "unknown-workflow",
        "unknown-version",
        "draft-as-latest",
        "invalid-field",
        "missing-field",
        "malformed-json",
        "not-an-object",
        "missing-input-file",
    ],
)
def test_nothing_executed_exit_2(args: list[str], expected: list[str]) -> None:
    result = flowdeck("run", *args, "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    # With --json the error is the API's envelope, on stderr (docs/api.md, the CLI section).
    error = json.loads(result.stderr)["error"]
    assert error["code"] and set(error) == {"code", "message", "details"}, result.stderr
    for part in expected:
        assert part in error["message"] or part in json.dumps(error["details"]), (part, result.stderr)
