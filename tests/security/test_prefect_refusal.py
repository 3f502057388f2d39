"""The worker refuses a flow run it may not run, and says why (issue 12: a run tagged as the
draft `score_lead` v3, created straight in Prefect, was run by the worker).

The attacker here holds the Prefect credential (a teammate given the UI's password, a
script with PREFECT_API_AUTH_STRING) but not flowdeck's pin key: they can create any flow
run Prefect accepts. Runs of published versions keep working from the Prefect UI or API;
drafts run only when pinned from the CLI or the dashboard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli
from support.prefect import client
from support.workers import WorkerProcess

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
ENV = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
ORPHAN_AFTER = 3
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture(scope="module")
def worker(prefect_api: str) -> Iterator[WorkerProcess]:
    process = WorkerProcess(DEFINITIONS, {"FLOWDECK_WORKER_ORPHAN_AFTER": str(ORPHAN_AFTER)})
    yield process
    process.stop()


def create_run(prefect_api: str, workflow_id: str, version: int, **extra: Any) -> str:
    """A flow run made straight in Prefect, spelled as flowdeck spells its runs."""
    with client(prefect_api) as prefect:
        flow_id = prefect.post("/flows/", json={"name": workflow_id}).json()["id"]
        body = {
            "flow_id": flow_id,
            "name": f"{workflow_id} v{version}",
            "parameters": {},
            "tags": ["flowdeck", f"workflow:{workflow_id}", f"version:{version}", "mode:async"],
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": datetime.now(UTC).isoformat()}},
            **extra,
        }
        response = prefect.post("/flow_runs/", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def final_state(prefect_api: str, flow_run_id: str, timeout: float = 45) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with client(prefect_api) as prefect:
            state = prefect.get(f"/flow_runs/{flow_run_id}").json()["state"]
        if state["type"] in FINAL:
            return state
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} never ended: {state}")


def test_a_draft_run_nobody_pinned_is_refused_with_the_reason(prefect_api: str, worker: Any) -> None:
    flow_run_id = create_run(prefect_api, "guarded_lead", 3, parameters={"budget": 1})
    state = final_state(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "'guarded_lead@3' is a draft" in state["message"]
    assert "not started from the flowdeck CLI or dashboard" in state["message"]
    shown = run_cli("status", "exec_" + flow_run_id.replace("-", ""), "--json", env=ENV)
    if shown.returncode == 0:  # the execution as flowdeck reports it: failed, with why
        body = json.loads(shown.stdout)
        assert body["status"] == "failed" and "is a draft" in body["error"]["message"]


def test_a_forged_pin_is_refused(prefect_api: str, worker: Any) -> None:
    flow_run_id = create_run(prefect_api, "guarded_lead", 3, labels={"flowdeck.pin": "0" * 64})
    state = final_state(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "pin does not match" in state["message"]


def test_a_run_carrying_its_own_definition_without_a_pin_is_refused(prefect_api: str, worker: Any) -> None:
    """A published version, but with definition text in its context that the worker would
    otherwise run instead of the file."""
    text = "id: guarded_hello\nversion: 1\nstatus: published\nsteps: [{id: evil, type: output, fields: {}}]\n"
    context = {"flowdeck": {"definition": {"path": "guarded_hello.yaml", "text": text}}}
    flow_run_id = create_run(prefect_api, "guarded_hello", 1, context=context)
    state = final_state(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "no flowdeck pin" in state["message"]


def test_a_run_of_a_version_the_worker_does_not_know_is_refused(prefect_api: str, worker: Any) -> None:
    flow_run_id = create_run(prefect_api, "guarded_hello", 99)
    state = final_state(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "99" in state["message"]


def test_a_run_with_two_version_tags_is_refused(prefect_api: str, worker: Any) -> None:
    tags = ["flowdeck", "workflow:guarded_lead", "version:1", "version:3", "mode:async"]
    flow_run_id = create_run(prefect_api, "guarded_lead", 1, tags=tags)
    state = final_state(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "more than one workflow or version tag" in state["message"]


def test_a_run_of_a_workflow_no_worker_serves_is_refused_not_left_pending(prefect_api: str, worker: Any) -> None:
    flow_run_id = create_run(prefect_api, "guarded_ghost", 1)
    state = final_state(prefect_api, flow_run_id, timeout=ORPHAN_AFTER * 2 + 30)
    assert (state["type"], state["name"]) == ("FAILED", "Refused")
    assert "no worker serves workflow 'guarded_ghost'" in state["message"]


def test_a_published_run_from_the_prefect_api_still_runs(prefect_api: str, worker: Any) -> None:
    flow_run_id = create_run(prefect_api, "guarded_hello", 1, parameters={"name": "API"})
    assert final_state(prefect_api, flow_run_id)["type"] == "COMPLETED"


def test_a_draft_pinned_from_the_cli_still_runs_on_the_worker(prefect_api: str, worker: Any) -> None:
    """Its Wait outlasts the sync limit: the CLI hands it to the worker, which checks the pin."""
    started = run_cli("run", "guarded_lead", "--version", "3", "--json", "--input", '{"budget": 7}', env=ENV)
    body = json.loads(started.stdout)
    assert body["status"] in ("waiting", "running"), started.stdout + started.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = json.loads(run_cli("status", body["execution_id"], "--json", env=ENV).stdout)
        if shown["status"] in ("success", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert shown["status"] == "success", shown
    assert shown["output"] == {"version": 3, "budget": 7}
