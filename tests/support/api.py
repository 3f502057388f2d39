"""`flowdeck api` as a real subprocess on 127.0.0.1, shared by the tests/test_api*.py modules.

The fixture `api` starts the server once per module with a known token and
the definitions under tests/api_definitions, against the suite's Prefect server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.local.daemons import terminate_group
from flowdeck.local.spawn import answers, flowdeck_command, free_port, spawn
from support.paths import ROOT, TEST_HOME
from support.prefect import auth_headers

API_DEFINITIONS = ROOT / "tests" / "api_definitions"
TOKEN = "test-token-0f9e8d7c6b5a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ApiServer:
    def __init__(self, definitions: Path = API_DEFINITIONS, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({"FLOWDECK_API_TOKENS": TOKEN, "FLOWDECK_DEFINITIONS": str(definitions)})
        env.update(extra_env or {})
        self.log_path = TEST_HOME / f"api-{self.port}.log"
        self.spawned = spawn(
            flowdeck_command("api", "--port", str(self.port)), self.log_path, env=env, cwd=ROOT, fresh_log=True
        )
        self.process = self.spawned.process
        self.spawned.wait_ready(lambda: answers(f"{self.url}/healthz"), 60, interval=0.2)

    def client(self, timeout: float = 60, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=timeout, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_drained(self, timeout: float = 60) -> None:
        """Until this server's outbox holds nothing Prefect lacks: executions answered by
        earlier tests reach Prefect behind their answers, and would count as new runs."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while client.get("/healthz").json().get("outbox", {}).get("executions"):
                assert time.monotonic() < deadline, "the API's outbox did not drain"
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            terminate_group(self.process.pid)


@pytest.fixture(scope="module")
def api(prefect_api: str) -> Iterator[ApiServer]:
    server = ApiServer()
    yield server
    server.stop()


def count_flow_runs(prefect_api: str, workflow_id: str) -> int:
    """Flow runs Prefect holds for a workflow: proves that nothing was started."""
    response = httpx.post(
        f"{prefect_api}/flow_runs/count",
        json={"flow_runs": {"tags": {"all_": ["flowdeck", f"workflow:{workflow_id}"]}}},
        headers=auth_headers(),
        timeout=10,
    )
    response.raise_for_status()
    return int(response.json())


def wait_for_status(client: httpx.Client, execution_id: str, wanted: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/workflow/workflow-executions/{execution_id}").json()
        if body.get("status") in wanted:
            return body
        time.sleep(0.25)
    raise AssertionError(f"{execution_id} did not reach {wanted}: {body}")
