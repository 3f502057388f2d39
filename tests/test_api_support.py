"""`flowdeck api` as a real subprocess on 127.0.0.1, shared by the tests/test_api*.py modules.

No tests here: the fixture `api` starts the server once per module with a known token and
the definitions under tests/api_definitions, against the suite's Prefect server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import ROOT, TEST_HOME
from flowdeck.local.daemons import terminate_group

API_DEFINITIONS = ROOT / "tests" / "api_definitions"
TOKEN = "test-token-0f9e8d7c6b5a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    def __init__(self, definitions: Path = API_DEFINITIONS, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({"FLOWDECK_API_TOKENS": TOKEN, "FLOWDECK_DEFINITIONS": str(definitions)})
        env.update(extra_env or {})
        self.log_path = TEST_HOME / f"api-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowdeck", "api", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flowdeck api exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"flowdeck api did not start: {self.log_path.read_text()}")

    def client(self, timeout: float = 60, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH, timeout=timeout, **kwargs)

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            terminate_group(self.process.pid)
        self.log.close()


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
