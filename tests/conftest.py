"""Shared test fixtures: a real Prefect server, a real local HTTP server, flowdeck workers.

The environment is settled at import time, before any test module imports prefect (which
reads its settings on import): a private FLOWDECK_HOME and server port, so the suite never
touches a developer's own server or state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.http_server import RecordingServer
from support.paths import EXAMPLE_DEFINITIONS, ROOT, TEST_HOME
from support.workers import WorkerProcess

from flowdeck.local.spawn import free_port

os.environ["FLOWDECK_HOME"] = str(TEST_HOME)
os.environ["FLOWDECK_SERVER_PORT"] = os.environ.get("FLOWDECK_TEST_SERVER_PORT") or str(free_port())
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_HOME", None)
# the suite's copy of the examples, never definitions/ itself (a user's own workflows live there)
os.environ["FLOWDECK_DEFINITIONS"] = str(EXAMPLE_DEFINITIONS)
# Faster liveness for the fault tests (a killed worker is taken over after this).
os.environ.setdefault("FLOWDECK_WORKER_DEAD_AFTER", "6")
os.environ.setdefault("FLOWDECK_WORKER_HEARTBEAT", "1")
os.environ.setdefault("FLOWDECK_WORKER_POLL_INTERVAL", "1")
# A look-ahead shorter than the tests' waits: they resume through the poll, as a long wait
# does in production (a suspended run is armed again only when it falls within this window).
os.environ.setdefault("FLOWDECK_WORKER_LOOKAHEAD", "2")

from flowdeck.local import prefect_server  # noqa: E402

prefect_server.base_environment()
os.environ["PREFECT_API_URL"] = prefect_server.local_api_url()

# Fixtures of the support package (imported after the environment above is settled).
pytest_plugins = ["support.api"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Code steps refuse to run without bubblewrap (docs/security.md): as root on a Debian-like
    host, install it once, as .ci/run does, saying so; elsewhere their tests show the refusal."""
    import shutil
    import subprocess

    if shutil.which("bwrap") or os.environ.get("FLOWDECK_SANDBOX_BWRAP") or os.geteuid() != 0:
        return
    if not shutil.which("apt-get"):
        return
    say = session.config.pluginmanager.get_plugin("terminalreporter").write_line  # not captured
    say("conftest: bubblewrap (the code-step sandbox) is missing: apt-get install -y bubblewrap")

    def apt(*args: str) -> int:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(
            ["apt-get", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        ).returncode

    if apt("install", "-y", "-qq", "bubblewrap") != 0:
        apt("update", "-qq")
        apt("install", "-y", "-qq", "bubblewrap")
    say(f"conftest: bubblewrap {'installed' if shutil.which('bwrap') else 'could NOT be installed'}")


# Tests by cost. `pytest -m fast` runs the fast layer alone: no Prefect server, seconds.
#   fast         uses none of SERVER_FIXTURES (nothing in it starts a Prefect server)
#   integration  uses the suite's Prefect server (and the workers, API processes on it)
#   scale        tests/scale: PostgreSQL, Redis, many processes
SERVER_FIXTURES = frozenset({"prefect_api", "start_worker", "api", "cluster", "cluster_with_own_redis"})
LAYERS = ("fast", "integration", "scale")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets exactly one layer marker, unless it declares one itself."""
    scale_dir = ROOT / "tests" / "scale"
    for item in items:
        if any(item.get_closest_marker(layer) for layer in LAYERS):
            continue
        if scale_dir in Path(item.path).parents:
            item.add_marker(pytest.mark.scale)
        elif SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect server for the whole session (started once, stopped at the end)."""
    prefect_server.start()
    yield os.environ["PREFECT_API_URL"]
    import asyncio

    from flowdeck.store.recording import flush_events

    asyncio.run(flush_events())  # events and run logs of in-process executions, while Prefect is up
    prefect_server.stop()


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture
def start_worker(prefect_api: str) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(definitions: Path | None = None, *, serving: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(definitions or EXAMPLE_DEFINITIONS, env, serving=serving)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
