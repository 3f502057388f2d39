"""The sandbox attacks through the real surfaces (issue 12): a code step run by `flowdeck run`
(sync, in the CLI's process) and by a `flowdeck worker` (async), with canary secrets in
their environment, probing /proc, FLOWDECK_HOME, the Prefect API and its parent."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from support.cli import run_cli

from flowdeck.execution.service import Flowdeck

DEFINITIONS = Path(__file__).resolve().parent / "sandbox_definitions"
CANARY = "canary-8d2a-engine-secret"


def probe_input(prefect_api: str) -> dict[str, Any]:
    port = urlparse(prefect_api).port
    return {"canary": CANARY, "prefect_port": port, "home": os.environ["FLOWDECK_HOME"]}


def assert_contained(report: dict[str, Any]) -> None:
    assert report["found"] == [], f"canary seen in {report['found']}"
    assert max(report["pids"]) < 10, report["pids"]  # its own PID namespace, nothing else
    assert report["prefect"] != "connected"
    assert all(isinstance(value, str) for value in report["files"].values()), report["files"]
    assert report["uid"] != 0


def test_a_code_step_in_a_sync_run_reaches_nothing_of_the_cli(prefect_api: str) -> None:
    env = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS), "FLOWDECK_API_TOKENS": CANARY, "FLOWDECK_CANARY": CANARY}
    ran = run_cli("run", "sandbox_probe", "--json", "--input", json.dumps(probe_input(prefect_api)), env=env)
    assert ran.returncode == 0, ran.stderr  # the CLI survived the kill of the step's parent
    body = json.loads(ran.stdout)
    assert body["status"] == "success", body
    assert_contained(body["output"]["report"])


def test_a_code_step_run_by_a_worker_reaches_nothing_of_it(prefect_api: str, start_worker: Any) -> None:
    worker = start_worker(DEFINITIONS, FLOWDECK_API_TOKENS=CANARY, FLOWDECK_CANARY=CANARY)
    submitted = run_cli(
        "run",
        "sandbox_probe",
        "--async",
        "--json",
        "--input",
        json.dumps(probe_input(prefect_api)),
        env={"FLOWDECK_DEFINITIONS": str(DEFINITIONS)},
    )
    assert submitted.returncode == 0, submitted.stderr
    execution_id = json.loads(submitted.stdout)["execution_id"]

    async def read() -> dict[str, Any]:
        async with Flowdeck.open(DEFINITIONS) as engine:
            return await engine.status(execution_id)

    deadline = time.monotonic() + 90
    body = asyncio.run(read())
    while body["status"] not in ("success", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        body = asyncio.run(read())
    assert body["status"] == "success", body
    assert worker.process.poll() is None, "the worker was killed by the code step"
    assert_contained(body["output"]["report"])
