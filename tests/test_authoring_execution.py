"""`flowdeck eval --execution`: the context a past execution recorded, read back from Prefect.

The one authoring command that needs Prefect (the suite's server, a worker for the async
run); the others are offline (test_authoring*.py).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures_authoring"
EXPRESSION = "[input.company_size, score.points, tier, execution.workflow_id, execution.mode, trigger.type]"


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "definitions")
    return tmp_path / "definitions"


def run_score_lead(definitions: Path, *extra: str) -> str:
    env = {"FLOWDECK_DEFINITIONS": str(definitions)}
    ran = run_cli("run", "score_lead", "--input", '{"company_size": 250, "budget": 20000}', "--json", *extra, env=env)
    assert ran.returncode == 0, ran.stderr
    execution_id: str = json.loads(ran.stdout)["execution_id"]
    return execution_id


def test_eval_on_an_async_execution_sees_every_step(definitions: Path, start_worker: Callable[..., Any]) -> None:
    start_worker(definitions)
    execution_id = run_score_lead(definitions, "--async")
    deadline = time.monotonic() + 90
    while True:
        status = json.loads(run_cli("status", execution_id, "--json").stdout)
        if status["status"] in ("success", "failed") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status["status"] == "success", status
    evaluated = run_cli("eval", EXPRESSION, "--execution", execution_id, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == [250, 45, "warm", "score_lead", "async", "manual"]


def test_eval_on_a_sync_execution_sees_every_step_too(prefect_api: str, definitions: Path) -> None:
    """A sync execution's step outputs are journaled by the drain, as an async one's are."""
    execution_id = run_score_lead(definitions)
    evaluated = run_cli("eval", EXPRESSION, "--execution", execution_id, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == [250, 45, "warm", "score_lead", "sync", "manual"]
    assert "no recorded output" not in evaluated.stderr


def test_eval_of_an_unknown_execution_says_so(prefect_api: str) -> None:
    evaluated = run_cli("eval", "input", "--execution", "exec_" + "f" * 32)
    assert evaluated.returncode == 2
    assert "no execution 'exec_ffffffffffffffffffffffffffffffff'" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr
