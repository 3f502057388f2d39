"""The outbox is the commit point (issue 13): crashes of the caller and outages of Prefect
never lose an execution, never record one twice, and never run a finished side effect
again. Side effects are counted at a real local HTTP server; records are read back from
the suite's real Prefect server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.http_server import RecordingServer
from support.paths import ROOT

from flowdeck.execution.service import Flowdeck
from flowdeck.store import encoding, read_model
from flowdeck.store.prefect_api import PrefectAPI

DEFINITIONS = Path(__file__).parent / "recording_definitions"


def routes(server: RecordingServer) -> None:
    server.routes["POST /first"] = (200, {})
    server.routes["POST /second"] = (200, {})


def status(execution_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with Flowdeck.open(DEFINITIONS) as engine:
            return await engine.status(execution_id)

    return asyncio.run(read())


def wait_until(execution_id: str, wanted: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = status(execution_id)
        if body["status"] in wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def prefect_records(execution_id: str) -> tuple[list[Any], list[Any]]:
    """Every flow run Prefect holds for the execution, and the task runs of the first."""

    async def read() -> tuple[list[Any], list[Any]]:
        async with PrefectAPI() as api:
            runs = await api.read_flow_runs({"flow_runs": encoding.execution_filter([execution_id]), "limit": 10})
            task_runs = await api.read_task_runs(runs[0].id) if runs else []
            return runs, task_runs

    return asyncio.run(read())


def wait_for_steps(execution_id: str, names: set[str], timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        runs, task_runs = prefect_records(execution_id)
        done = {t.name for t in task_runs if t.state_type is not None and t.state_type.value == "COMPLETED"}
        if names <= done or time.monotonic() > deadline:
            return task_runs
        time.sleep(0.2)


def test_cli_killed_mid_execution_continues_after_the_last_finished_step(
    start_worker: Any, http_server: RecordingServer
) -> None:
    routes(http_server)
    env = {**os.environ, "FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowdeck",
            "run",
            "rec_two_calls",
            "--json",
            "-i",
            f'{{"base_url": "{http_server.url}"}}',
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while http_server.count("POST", "/first") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_server.count("POST", "/first") == 1
    time.sleep(0.3)  # inside the 3 s pause
    cli.send_signal(signal.SIGKILL)
    cli.wait()

    # the execution the killed CLI committed, found in the outbox it shared with us
    async def newest() -> str:
        async with Flowdeck.open(DEFINITIONS) as engine:
            rows = [r for r in engine.outbox.recent(20) if r.workflow_id == "rec_two_calls" and r.status == "running"]
            return rows[0].execution_id

    execution_id = asyncio.run(newest())
    start_worker(DEFINITIONS)  # its process adopts the orphan; a worker continues it
    final = wait_until(execution_id, {"success", "failed"}, timeout=60)
    assert final["status"] == "success", final
    assert http_server.count("POST", "/first") == 1  # finished before the kill: not again
    assert http_server.count("POST", "/second") == 1
    task_runs = wait_for_steps(execution_id, {"First call", "Second call"})
    runs, _ = prefect_records(execution_id)
    assert len(runs) == 1 and runs[0].state.type.value == "COMPLETED"
    assert sorted(t.name for t in task_runs if t.name == "First call") == ["First call"]


def test_prefect_down_sync_answers_and_async_runs_after_it_returns(
    start_worker: Any, http_server: RecordingServer, tmp_path: Path
) -> None:
    from flowdeck.local import prefect_server

    routes(http_server)
    prefect_server.stop()
    try:

        async def while_down() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            async with Flowdeck.open(DEFINITIONS) as engine:
                started = time.monotonic()
                call = await engine.run_sync("rec_two_calls", "latest", {"base_url": http_server.url})
                answered = time.monotonic() - started
                assert answered < 6, answered  # 3 s pause; Prefect's outage costs the caller nothing
                submitted = await engine.submit("rec_two_calls", "latest", {"base_url": http_server.url})
                polled = await engine.status(submitted["execution_id"])
                return call.body, submitted, polled

        body, submitted, polled = asyncio.run(while_down())
    finally:
        prefect_server.start()
    assert body["status"] == "success", body
    assert submitted["status"] == "pending" and polled["status"] == "pending", (submitted, polled)
    start_worker(DEFINITIONS)
    final = wait_until(submitted["execution_id"], {"success", "failed"}, timeout=60)
    assert final["status"] == "success", final
    assert wait_until(body["execution_id"], {"success"}, timeout=30)["status"] == "success"
    for execution_id in (body["execution_id"], submitted["execution_id"]):
        wait_for_steps(execution_id, {"First call", "Second call"})
        runs, task_runs = prefect_records(execution_id)
        assert len(runs) == 1, runs
        assert sorted(t.name for t in task_runs if t.name in ("First call", "Second call")) == [
            "First call",
            "Second call",
        ]
    assert http_server.count("POST", "/first") == 2  # once per execution
    assert http_server.count("POST", "/second") == 2


def test_a_replay_racing_a_second_process_never_duplicates(prefect_api: str, http_server: RecordingServer) -> None:
    """Executions committed while Prefect is unreachable; then two processes open the
    outbox at once and both replay it."""
    routes(http_server)

    async def commit_offline() -> list[str]:
        async with Flowdeck.open(DEFINITIONS, api_url="http://127.0.0.1:9/api") as engine:
            engine.drainer.start()
            ids = []
            for _ in range(5):
                call = await engine.run_sync("rec_two_calls", "latest", {"base_url": http_server.url}, trigger=None)
                ids.append(call.execution_id)
            return ids

    ids = asyncio.run(commit_offline())
    env = {**os.environ, "FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "flowdeck", "status", ids[0], "--json"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for racer in racers:
        racer.wait(timeout=60)
    for execution_id in ids:
        assert wait_until(execution_id, {"success"}, timeout=30)["status"] == "success"
        task_runs = wait_for_steps(execution_id, {"First call", "Pause", "Second call"})
        runs, _ = prefect_records(execution_id)
        assert len(runs) == 1, runs
        names = sorted(t.name for t in task_runs)
        assert names == sorted(set(names)), names  # no step recorded twice
    assert http_server.count("POST", "/first") == 5


def test_status_sees_a_committed_execution_before_prefect_has_it(
    prefect_api: str, http_server: RecordingServer
) -> None:
    routes(http_server)

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with Flowdeck.open(DEFINITIONS, api_url="http://127.0.0.1:9/api") as engine:
            call = await engine.run_sync("rec_two_calls", "latest", {"base_url": http_server.url})
            return call.body, await read_model.get_status(engine.api, call.execution_id, engine.outbox)

    body, polled = asyncio.run(go())
    assert body["status"] == polled["status"] == "success"
    assert polled["output"] == body["output"]
    assert polled["execution_id"] == body["execution_id"]


def test_api_killed_right_after_answering_while_prefect_is_down(prefect_api: str, http_server: RecordingServer) -> None:
    """A stream of sync calls answered by an API whose Prefect is stopped, then the API is
    killed with kill -9: every answered execution reaches Prefect once the next process
    opens the outbox, and no side effect ran twice."""
    from support.api import ApiServer

    from flowdeck.local import prefect_server

    routes(http_server)
    http_server.routes["POST /first"] = (200, {})
    server = ApiServer(DEFINITIONS)
    bodies = []
    try:
        prefect_server.stop()
        try:
            with server.client() as client:
                for _ in range(3):
                    response = client.post(
                        "/workflow/workflow-executions",
                        json={"workflow_id": "rec_two_calls", "input_data": {"base_url": http_server.url}},
                    )
                    assert response.status_code == 200, response.text
                    bodies.append(response.json())
                # /healthz reuses Prefect's answer for half a second, waits 50 ms for a new one
                # while the old is under 5 s: a Prefect that is down is reported within seconds.
                deadline = time.monotonic() + 6
                while client.get("/healthz").status_code != 503:
                    assert time.monotonic() < deadline, "/healthz still says Prefect is up"
                    time.sleep(0.1)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
        finally:
            prefect_server.start()
    finally:
        server.stop()
    assert [b["status"] for b in bodies] == ["success"] * 3
    restarted = ApiServer(DEFINITIONS)  # the next process to open the outbox replays it
    try:
        for body in bodies:
            wait_for_steps(body["execution_id"], {"First call", "Pause", "Second call"}, timeout=30)
        with restarted.client() as client:
            assert client.get("/healthz").json()["prefect"] == "ok"
    finally:
        restarted.stop()
    for body in bodies:
        assert wait_until(body["execution_id"], {"success"}, timeout=60)["status"] == "success"
        wait_for_steps(body["execution_id"], {"First call", "Pause", "Second call"})
        runs, task_runs = prefect_records(body["execution_id"])
        assert len(runs) == 1 and runs[0].state.type.value == "COMPLETED", runs
        names = sorted(t.name for t in task_runs)
        assert names == sorted(set(names)), names
    assert http_server.count("POST", "/first") == 3
    assert http_server.count("POST", "/second") == 3


def test_a_step_that_kills_its_worker_is_not_retried_forever(start_worker: Any) -> None:
    env = {"PYTHONPATH": str(Path(__file__).parent), "FLOWDECK_WORKER_DEAD_AFTER": "2"}

    async def submit() -> str:
        async with Flowdeck.open(DEFINITIONS) as engine:
            return str((await engine.submit("rec_kill_worker", "latest", {}))["execution_id"])

    execution_id = asyncio.run(submit())
    for _ in range(4):  # each worker takes it over, runs the step and dies (maybe before "serving")
        worker = start_worker(DEFINITIONS, serving=False, **env)
        assert worker.process.wait(timeout=90) == -9, worker.log_path.read_text()[-2000:]
    last = start_worker(DEFINITIONS, **env)
    final = wait_until(execution_id, {"success", "failed"}, timeout=60)
    assert last.process.poll() is None  # the fifth one did not run it again
    assert final["status"] == "failed", final
    # the step killed each worker within 0.2 s, before its Running event: no step name
    assert final["error"]["step_name"] in (None, "Crash the worker")
    assert "lost its worker 4 times" in final["error"]["message"]
    assert "not retried more than 3 times" in final["error"]["message"]
