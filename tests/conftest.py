"""Shared test fixtures: a real Prefect server, a real local HTTP server, flowdeck workers.

The environment is settled at import time, before any test module imports prefect (which
reads its settings on import): a private FLOWDECK_HOME and server port, so the suite never
touches a developer's own server or state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.paths import ROOT, TEST_HOME

from flowdeck.local.spawn import flowdeck_command, free_port, spawn

_free_port = free_port  # (tests/test_result_storage_reads.py imports it under this name)

os.environ["FLOWDECK_HOME"] = str(TEST_HOME)
os.environ["FLOWDECK_SERVER_PORT"] = os.environ.get("FLOWDECK_TEST_SERVER_PORT") or str(free_port())
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_HOME", None)
os.environ["FLOWDECK_DEFINITIONS"] = str(ROOT / "definitions")
# Faster liveness for the fault tests (a killed worker is taken over after this).
os.environ.setdefault("FLOWDECK_WORKER_DEAD_AFTER", "6")
os.environ.setdefault("FLOWDECK_WORKER_HEARTBEAT", "1")
os.environ.setdefault("FLOWDECK_WORKER_POLL_INTERVAL", "1")
# A look-ahead shorter than the tests' waits: they resume through the poll, as a long wait
# does in production (a suspended run is armed again only when it falls within this window).
os.environ.setdefault("FLOWDECK_WORKER_LOOKAHEAD", "2")

from flowdeck.local import prefect_server  # noqa: E402
from flowdeck.local.daemons import terminate_group  # noqa: E402

prefect_server.base_environment()
os.environ["PREFECT_API_URL"] = prefect_server.local_api_url()


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


class RecordingServer:
    """A real HTTP server on 127.0.0.1 that answers from a routing table and records calls.

    Routes map "METHOD /path" to (status, json_body) or a callable(request) -> (status, body).
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.routes: dict[str, Any] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                from urllib.parse import parse_qs, urlparse

                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                request = {
                    "method": self.command,
                    "path": parsed.path,
                    "query": {k: v[0] for k, v in parse_qs(parsed.query).items()},
                    "headers": dict(self.headers),
                    "body": body,
                }
                with server.lock:
                    server.calls.append(request)
                route = server.routes.get(f"{self.command} {parsed.path}")
                if route is None:
                    status, answer = 404, {"error": "no route"}
                elif callable(route):
                    status, answer = route(request)
                else:
                    status, answer = route
                payload = json.dumps(answer).encode() if not isinstance(answer, str) else answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(answer, str) else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c["method"] == method and c["path"] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


class WorkerProcess:
    """`flowdeck worker` as a real subprocess (so tests can kill -9 it)."""

    def __init__(self, definitions: Path, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ)
        env.update(extra_env or {})
        env["FLOWDECK_DEFINITIONS"] = str(definitions)
        self.log_path = TEST_HOME / f"worker-{time.monotonic_ns()}.log"
        self.spawned = spawn(flowdeck_command("worker"), self.log_path, env=env, cwd=ROOT, fresh_log=True)
        self.process = self.spawned.process
        self.spawned.wait_ready(self.spawned.says(b"serving"), 90)

    def kill(self) -> None:
        """kill -9: no clean-up, exactly like a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            terminate_group(self.process.pid)


@pytest.fixture
def start_worker(prefect_api: str) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(definitions: Path | None = None, **env: str) -> WorkerProcess:
        worker = WorkerProcess(definitions or ROOT / "definitions", env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def run_cli(
    *args: str, input_text: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `flowdeck ...` as a user would, in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flowdeck", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        input=input_text,
        timeout=timeout,
    )
