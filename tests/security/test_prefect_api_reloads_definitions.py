"""The API reloads definitions as the worker does (issue 12: a new file was
`unknown_workflow` until a restart; a deleted one still answered 202 and stayed `pending`
forever). Through the real `flowdeck api` on the suite's Prefect server.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.api import ApiServer

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
WITHIN = 10.0  # seconds for a changed file to be seen (the API looks every second)

ADDED = """\
id: reloaded_new
name: Added while the API runs
version: 1
status: published
steps:
  - id: done
    type: output
    fields: {added: true}
"""


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    directory = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS, directory)
    return directory


@pytest.fixture
def api_server(prefect_api: str, definitions: Path) -> Iterator[ApiServer]:
    server = ApiServer(definitions)
    yield server
    server.stop()


def eventually(check: Callable[[], httpx.Response], wanted: int) -> httpx.Response:
    deadline = time.monotonic() + WITHIN
    while True:
        response = check()
        if response.status_code == wanted or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def test_a_new_file_becomes_runnable_without_a_restart(api_server: ApiServer, definitions: Path) -> None:
    with api_server.client() as api:

        def run() -> httpx.Response:
            return api.post("/workflow/workflow-executions", json={"workflow_id": "reloaded_new", "input_data": {}})

        assert run().status_code == 404
        (definitions / "reloaded_new.yaml").write_text(ADDED)
        answer = eventually(run, 200)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == {"added": True}
        assert api.get("/workflow/workflows/reloaded_new").status_code == 200


def test_a_deleted_file_is_unknown_not_a_run_that_stays_pending(api_server: ApiServer, definitions: Path) -> None:
    with api_server.client() as api:

        def submit() -> httpx.Response:
            return api.post(
                "/workflow/workflow-executions/async", json={"workflow_id": "guarded_hello", "input_data": {}}
            )

        assert submit().status_code == 202
        (definitions / "guarded_hello.yaml").unlink()
        answer = eventually(submit, 404)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "unknown_workflow"
