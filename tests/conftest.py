"""Shared test fixtures: a real Prefect server, a real local HTTP server, flowdeck workers.

The environment is settled at import time, before any test module imports prefect (which
reads its settings on import): a private FLOWDECK_HOME and server port, so the suite never
touches a developer's own server or state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = Path(tempfile.mkdtemp(prefix="flowdeck-test-"))
os.environ["FLOWDECK_HOME"] = str(TEST_HOME)
os.environ["FLOWDECK_SERVER_PORT"] = os.environ.get("FLOWDECK_TEST_SERVER_PORT") or str(_free_port())
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

from flowdeck.local import prefect_server
from flowdeck.local.daemons import terminate_group  # noqa: E402

prefect_server.base_environment()
os.environ["PREFECT_API_URL"] = prefect_server.local_api_url()


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
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowdeck", "worker"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if b"serving" in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start: {self.log_path.read_text()}")

    def kill(self) -> None:
        """kill -9: no clean-up, exactly like a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            terminate_group(self.process.pid)
        self.log.close()


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


def run_cli(*args: str, input_text: str | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
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
