"""Prefect behind a credential: the attacks of issue 12 ("Prefect answers anyone"), from a
local process that is not flowdeck's (no PREFECT_API_AUTH_STRING), against the suite's
own server, which flowdeck starts exactly as it starts a user's.

Each attack failed before the server ran with Prefect's API authentication: any local
process started a workflow, created a run tagged as a draft, and cancelled executions.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli
from support.paths import TEST_HOME
from support.prefect import client
from support.workers import WorkerProcess

from flowdeck.local import credentials
from flowdeck.local.spawn import free_port

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
ENV = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}


@pytest.fixture(scope="module")
def worker(prefect_api: str) -> Iterator[WorkerProcess]:
    process = WorkerProcess(DEFINITIONS)  # also creates the deployments of the published versions
    yield process
    process.stop()


def deployment_id(prefect_api: str, flow: str, name: str = "v1") -> str:
    with client(prefect_api) as prefect:
        response = prefect.get(f"/deployments/name/{flow}/{name}")
    response.raise_for_status()
    return str(response.json()["id"])


def count_runs(prefect_api: str, workflow_id: str) -> int:
    with client(prefect_api) as prefect:
        response = prefect.post("/flow_runs/count", json={"flow_runs": {"tags": {"all_": [f"workflow:{workflow_id}"]}}})
    response.raise_for_status()
    return int(response.json())


def flow_run_of(execution_id: str) -> Any:
    from flowdeck.store.prefect_api import PrefectAPI
    from flowdeck.store.read_model import read_flow_run

    async def read() -> Any:
        async with PrefectAPI() as api:
            return await read_flow_run(api, execution_id)

    return asyncio.run(read())


def submit(workflow_id: str, input_data: dict[str, Any] | None = None) -> str:
    result = run_cli("run", workflow_id, "--async", "--json", "--input", json.dumps(input_data or {}), env=ENV)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["execution_id"])


def wait_status(execution_id: str, wanted: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = run_cli("status", execution_id, "--json", env=ENV)
        if shown.returncode == 0:
            body = json.loads(shown.stdout)
            if body.get("status") in wanted:
                return body
        time.sleep(0.5)
    raise AssertionError(f"{execution_id} did not reach {wanted}: {body}")


def test_a_process_without_the_credential_cannot_start_a_published_workflow(prefect_api: str, worker: Any) -> None:
    deployment = deployment_id(prefect_api, "guarded_hello")
    before = count_runs(prefect_api, "guarded_hello")
    with client(prefect_api, authenticated=False) as anyone:
        response = anyone.post(f"/deployments/{deployment}/create_flow_run", json={"parameters": {"name": "x"}})
    assert response.status_code == 401, response.text
    assert count_runs(prefect_api, "guarded_hello") == before


def test_a_process_without_the_credential_cannot_create_a_draft_run(prefect_api: str, worker: Any) -> None:
    with client(prefect_api) as prefect:
        flow_id = prefect.post("/flows/", json={"name": "guarded_lead"}).json()["id"]
    before = count_runs(prefect_api, "guarded_lead")
    draft_run = {
        "flow_id": flow_id,
        "name": "guarded_lead v3",
        "parameters": {"budget": 1},
        "tags": ["flowdeck", "workflow:guarded_lead", "version:3", "mode:async"],
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": datetime.now(UTC).isoformat()}},
    }
    with client(prefect_api, authenticated=False) as anyone:
        response = anyone.post("/flow_runs/", json=draft_run)
    assert response.status_code == 401, response.text
    assert count_runs(prefect_api, "guarded_lead") == before


def test_a_process_without_the_credential_cannot_cancel_or_read_executions(prefect_api: str, worker: Any) -> None:
    execution_id = submit("guarded_wait")
    wait_status(execution_id, {"waiting"})
    flow_run = flow_run_of(execution_id)
    with client(prefect_api, authenticated=False) as anyone:
        cancelled = anyone.post(
            f"/flow_runs/{flow_run.id}/set_state", json={"state": {"type": "CANCELLED"}, "force": True}
        )
        listed = anyone.post("/flow_runs/filter", json={"limit": 5})
        read = anyone.get(f"/flow_runs/{flow_run.id}")
    assert (cancelled.status_code, listed.status_code, read.status_code) == (401, 401, 401)
    assert wait_status(execution_id, {"waiting"})["status"] == "waiting"
    # flowdeck itself, with the credential, cancels as before
    done = run_cli("cancel", execution_id, env=ENV)
    assert done.returncode == 0, done.stderr
    assert wait_status(execution_id, {"cancelled"})["status"] == "cancelled"


def test_flowdeck_runs_as_before_with_the_credential(prefect_api: str, worker: Any) -> None:
    sync = run_cli("run", "guarded_hello", "--json", "--input", '{"name": "Ada"}', env=ENV)
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["output"] == {"message": "Hello, Ada!"}
    execution_id = submit("guarded_hello", {"name": "Bob"})
    assert wait_status(execution_id, {"success", "failed"})["output"] == {"message": "Hello, Bob!"}


def test_a_run_started_from_the_prefect_ui_or_api_with_the_credential_still_runs(prefect_api: str, worker: Any) -> None:
    deployment = deployment_id(prefect_api, "guarded_hello")
    with client(prefect_api) as prefect:  # as the Prefect UI does, once given the password
        created = prefect.post(f"/deployments/{deployment}/create_flow_run", json={"parameters": {"name": "UI"}})
    assert created.status_code == 201, created.text
    flow_run_id = created.json()["id"]
    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        with client(prefect_api) as prefect:
            state = prefect.get(f"/flow_runs/{flow_run_id}").json()["state_type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(0.5)
    assert state == "COMPLETED"


def test_the_credential_is_private_and_never_logged(prefect_api: str, worker: Any) -> None:
    path = credentials.prefect_auth_file()
    assert path.parent == TEST_HOME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret.split(":", 1)[1]) >= 32  # a generated password, not a constant
    assert os.environ["PREFECT_API_AUTH_STRING"] == secret  # handed to flowdeck's processes
    password = secret.split(":", 1)[1]
    for log in [TEST_HOME / "server.log", worker.log_path]:
        assert password not in log.read_text(errors="replace"), log
    shown = run_cli("server", "status", "--json")
    assert password not in shown.stdout + shown.stderr


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "prefect_auth").write_text("flowdeck:leaked\n")
    (home / "prefect_auth").chmod(0o644)
    env = {"FLOWDECK_HOME": str(home), "FLOWDECK_SERVER_PORT": str(free_port()), "PREFECT_API_URL": ""}
    result = run_cli("server", "start", env=env, timeout=60)
    assert result.returncode != 0
    assert "can be read by other users" in result.stderr and "Traceback" not in result.stderr


def test_server_status_says_how_to_open_the_prefect_ui(prefect_api: str) -> None:
    shown = run_cli("server", "status")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "asks for a password" in text and str(credentials.prefect_auth_file()) in text
    # the UI asks for it (auth BASIC) and calls this very server, not Prefect's default port
    with client(prefect_api, authenticated=False) as anyone:
        ui_settings = anyone.get(prefect_api.removesuffix("/api") + "/ui-settings").json()
    assert ui_settings["auth"] == "BASIC"
    assert ui_settings["api_url"] == prefect_api


def test_a_wrong_credential_is_a_clear_error(prefect_api: str) -> None:
    """The same server as an external one (localhost, not 127.0.0.1), with a wrong string."""
    env = {"PREFECT_API_URL": prefect_api.replace("127.0.0.1", "localhost"), "PREFECT_API_AUTH_STRING": "flowdeck:no"}
    result = run_cli("executions", env=env, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "answered 401" in result.stderr and "set PREFECT_API_AUTH_STRING" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_home_where_the_secret_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "file-not-dir"
    home.write_text("")  # FLOWDECK_HOME is a file: nothing can be created below it
    env = {"FLOWDECK_HOME": str(home), "FLOWDECK_SERVER_PORT": str(free_port()), "PREFECT_API_URL": ""}
    result = run_cli("server", "start", env=env, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "cannot create" in result.stderr or str(home) in result.stderr
