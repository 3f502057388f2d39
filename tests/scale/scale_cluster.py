"""A flowdeck deployment beyond one machine, on this machine: the parts the scale suite drives.

- a Prefect server on a fresh PostgreSQL database, with Redis messaging, started by
  `flowdeck server start --database ... --redis ... [--api-processes N]`;
- a shared result storage block (`flowdeck storage set redis://...`);
- `flowdeck worker` and `flowdeck api` processes, each with a FLOWDECK_HOME of its own, as
  if on its own machine, configured by PREFECT_API_URL and environment variables alone;
- a counting HTTP server on 127.0.0.1 where workflows leave their side effects.

The test process talks to all of it over HTTP only, as a client on another machine would.

The suite runs in the normal suite at small sizes, so it stays honest on every change; the
sizes docs/reliability.md reports are one command away:

    FLOWDECK_SCALE=full .venv/bin/python -m pytest tests/scale -s

Each test writes what it measured to .scale-reports/<test>.json (FLOWDECK_SCALE_REPORTS).
Needs PostgreSQL (FLOWDECK_TEST_POSTGRES, default postgresql+asyncpg://postgres@127.0.0.1:5432)
and Redis (FLOWDECK_TEST_REDIS, default redis://127.0.0.1:6379, database 11).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.local.spawn import flowdeck_command, free_port, spawn
from flowdeck.store import encoding

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = Path(__file__).resolve().parent / "definitions"
POSTGRES = os.environ.get("FLOWDECK_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("FLOWDECK_TEST_REDIS", "redis://127.0.0.1:6379")
FINAL = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]


FULL = os.environ.get("FLOWDECK_SCALE") == "full"


def size(name: str, ci: float, full: float) -> float:
    """A size of the suite: FLOWDECK_SCALE_<NAME> if set, else the full or the CI size."""
    return float(os.environ.get(f"FLOWDECK_SCALE_{name.upper()}") or (full if FULL else ci))


EXECUTIONS = int(size("executions", 45, 1000))
WAITING = int(size("waiting", 40, 10000))
SOAK_MINUTES = size("soak_minutes", 0.5, 30)


def report(name: str, figures: dict[str, Any]) -> None:
    directory = Path(os.environ.get("FLOWDECK_SCALE_REPORTS") or ROOT / ".scale-reports")
    directory.mkdir(parents=True, exist_ok=True)
    figures = {"scale": "full" if FULL else "ci", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    (directory / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{name}: {json.dumps(figures, indent=2)}")


def group_members(pid: int) -> Iterator[int]:
    """The processes of the process group led by `pid` (a server's children included)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[2]) == pid:
                    yield int(entry)
            except (OSError, IndexError, ValueError):
                continue


def group_size(pid: int) -> int:
    return sum(1 for _ in group_members(pid))


def group_rss_mb(pid: int) -> float:
    """Resident memory of a process group."""
    total_kb = 0
    for member in group_members(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return round(total_kb / 1024, 1)


class EffectServer:
    """Counts side effects per (execution, step) and records when each arrived."""

    def __init__(self, latency: float = 0.05) -> None:
        self.latency = latency
        self.counts: Counter[tuple[str, str]] = Counter()
        self.arrivals: dict[tuple[str, str], list[float]] = {}  # time.time() of each call
        self.resume_lags: list[float] = []  # arrival of a step after a Wait minus its due time
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                arrived = datetime.now(UTC)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                key = (body.get("execution"), body.get("step"))
                with server.lock:
                    server.counts[key] += 1
                    server.arrivals.setdefault(key, []).append(time.time())
                    if body.get("due"):
                        due = datetime.fromisoformat(body["due"])
                        server.resume_lags.append((arrived - due).total_seconds())
                time.sleep(server.latency)  # a real service takes a moment: steps are in flight
                payload = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        ThreadingHTTPServer.daemon_threads = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def effects_of(self, execution_id: str) -> dict[str, int]:
        with self.lock:
            return {step: n for (execution, step), n in self.counts.items() if execution == execution_id}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Process:
    """A flowdeck process started as a user would (its own home, its own log)."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready_marker: bytes
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> Process:
        spawned = spawn(flowdeck_command(*self.command), self.log_path, env=self.env, cwd=ROOT, name=self.name)
        self.popen = spawned.process
        spawned.wait_ready(spawned.says(self.ready_marker), timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def rss_mb(self) -> float:
        return group_rss_mb(self.pid)

    def kill(self) -> None:
        """kill -9 of the whole process: no clean-up, like a crash or a pulled plug."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def executed(self) -> int | None:
        """What a worker reported on a clean stop."""
        for line in self.log_path.read_text().splitlines():
            if " stopped: executed " in line:
                return int(line.split(" stopped: executed ")[1].split()[0])
        return None


@dataclass
class RedisServer:
    """A Redis of the test's own, which it may kill (the machine's is shared). It keeps an
    append-only file synced on every write, as a Redis that holds results must in
    production, so a restart loses nothing."""

    directory: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RedisServer:
        import redis

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
            except redis.exceptions.RedisError:
                return False

        spawned = spawn(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            self.directory / "redis.log",
        )
        self.popen = spawned.process
        spawned.wait_ready(answers, timeout)
        return self

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@dataclass
class Cluster:
    """`database=None`: the embedded default instead (SQLite, local result files, every
    process on one FLOWDECK_HOME), for comparisons."""

    root: Path
    api_processes: int = 1
    database: str | None = field(default_factory=lambda: f"flowdeck_scale_{secrets.token_hex(4)}")
    redis_db: int = int(os.environ.get("FLOWDECK_TEST_REDIS_DB", "11"))
    redis_base: str = REDIS
    port: int = field(default_factory=free_port)
    workers: list[Process] = field(default_factory=list)
    apis: list[Process] = field(default_factory=list)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pin_key: str = field(default_factory=lambda: secrets.token_hex(32))  # one for the cluster, as docs/scaling.md says

    @property
    def database_url(self) -> str:
        return f"{POSTGRES}/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"{self.redis_base}/{self.redis_db}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def auth_string(self) -> str:
        """The server's credential, handed to each machine as an operator does (docs/scaling.md)."""
        return (self.root / "server" / "prefect_auth").read_text().strip()

    def machine_env(self, name: str, **extra: str) -> dict[str, str]:
        """The environment of a flowdeck process on a machine of its own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLOWDECK_"))}
        env.update(
            FLOWDECK_HOME=str(self.root / (name if self.database else "server")),
            PREFECT_API_URL=self.api_url,
            PREFECT_API_AUTH_STRING=self.auth_string,
            FLOWDECK_PIN_KEY=self.pin_key,
            FLOWDECK_DEFINITIONS=str(DEFINITIONS),
            FLOWDECK_WORKER_HEARTBEAT="1",
            FLOWDECK_WORKER_DEAD_AFTER="6",
            FLOWDECK_WORKER_POLL_INTERVAL="1",
        )
        env.update(extra)
        return env

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLOWDECK_"))}
        env.update(FLOWDECK_HOME=str(self.root / "server"), FLOWDECK_SERVER_PORT=str(self.port))
        return env

    # server ------------------------------------------------------------------------
    def start(self) -> Cluster:
        if self.database is None:
            self.start_server()
            return self
        asyncio.run(_admin_sql(f'CREATE DATABASE "{self.database}"'))
        _flush_redis(self.redis_url)
        self.start_server()
        done = subprocess.run(
            [sys.executable, "-m", "flowdeck", "storage", "set", self.redis_url],
            env=self.machine_env("admin"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"storage set failed: {done.stderr}")
        return self

    def start_server(self) -> None:
        command = (
            [
                "server",
                "start",
                "--database",
                self.database_url,
                "--redis",
                self.redis_url,
                "--api-processes",
                str(self.api_processes),
            ]
            if self.database
            else ["server", "start"]
        )
        done = subprocess.run(
            [sys.executable, "-m", "flowdeck", *command],
            env=self._server_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"server start failed: {done.stdout}{done.stderr}")

    def stop_server(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "flowdeck", "server", "stop"],
            env=self._server_env(),
            cwd=ROOT,
            capture_output=True,
            timeout=120,
        )

    def server_pids(self) -> list[int]:
        home = self.root / "server"
        pids = []
        for name in ("server.pid", "server-services.pid"):
            try:
                pids.append(int((home / name).read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def stop(self) -> None:
        for process in self.workers + self.apis:
            process.stop()
        self.stop_server()
        if self.database:
            asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            _flush_redis(self.redis_url)

    # flowdeck processes -------------------------------------------------------------
    def start_worker(self, concurrency: int = 100, definitions: Path = DEFINITIONS, **env: str) -> Process:
        name = f"worker-{len(self.workers) + 1}"
        worker = Process(
            name,
            ["worker", "--concurrency", str(concurrency)],
            self.machine_env(name, FLOWDECK_DEFINITIONS=str(definitions), **env),
            b"serving",
            self.root / name / "worker.log",
        ).start()
        self.workers.append(worker)
        return worker

    def start_api(self, definitions: Path = DEFINITIONS) -> tuple[Process, str]:
        name = f"api-{len(self.apis) + 1}"
        port = free_port()
        env = self.machine_env(name, FLOWDECK_API_TOKENS=self.token, FLOWDECK_DEFINITIONS=str(definitions))
        api = Process(name, ["api", "--port", str(port)], env, b"Uvicorn running", self.root / name / "api.log").start()
        self.apis.append(api)
        return api, f"http://127.0.0.1:{port}"

    def memory(self) -> dict[str, float]:
        found = {p.name: p.rss_mb() for p in self.workers + self.apis if p.popen and p.popen.poll() is None}
        for label, pid in zip(("prefect-server", "prefect-services"), self.server_pids(), strict=False):
            found[label] = group_rss_mb(pid)
        return found

    # Prefect's view -------------------------------------------------------------------
    def prefect(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, auth=tuple(self.auth_string.split(":", 1)), timeout=60)  # type: ignore[arg-type]

    def runs(self, client: httpx.Client, execution_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each execution's flow run as Prefect's API answers it."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(execution_ids), 200):
            chunk = execution_ids[start : start + 200]
            # Execution ids are minted by flowdeck; the flow run carries one as its idempotency
            # key and its label (flowdeck.store.encoding).
            body = {"flow_runs": encoding.execution_filter(chunk), "limit": 200}
            response = client.post("/flow_runs/filter", json=body)
            response.raise_for_status()
            for run in response.json():
                label = (run.get("labels") or {}).get(encoding.EXECUTION_LABEL)
                found[str(label) if label else "exec_" + run["id"].replace("-", "")] = run
        return found

    def states(self, client: httpx.Client, execution_ids: list[str]) -> dict[str, str]:
        """The Prefect state type of each execution's flow run."""
        return {e: run["state_type"] for e, run in self.runs(client, execution_ids).items()}

    def count(self, client: httpx.Client, flow_run_filter: dict[str, Any]) -> int:
        response = client.post("/flow_runs/count", json={"flow_runs": flow_run_filter})
        response.raise_for_status()
        return int(response.json())

    def wait_final(
        self, execution_ids: list[str], timeout: float, flow_run_filter: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """Each execution's final state. With `flow_run_filter` (one that matches exactly these
        runs), a count is polled instead of reading every run each time: reading 10,000 runs
        every few seconds would load the server the test is measuring."""
        deadline = time.monotonic() + timeout
        with self.prefect() as client:
            if flow_run_filter is not None:
                ended = {**flow_run_filter, "state": {"type": {"any_": FINAL}}}
                while self.count(client, ended) < len(execution_ids) and time.monotonic() < deadline:
                    time.sleep(5)
            while True:
                states = self.states(client, execution_ids)
                if all(states.get(e) in FINAL for e in execution_ids):
                    return states
                if time.monotonic() > deadline:
                    pending = Counter(states.get(e, "MISSING") for e in execution_ids)
                    raise AssertionError(f"not all executions ended within {timeout:.0f} s: {dict(pending)}")
                time.sleep(2)

    def running_workers(self, client: httpx.Client, execution_id: str) -> list[str]:
        """Which workers ran an execution (its Running states name them), in order."""
        run = self.runs(client, [execution_id])[execution_id]
        response = client.get("/flow_run_states/", params={"flow_run_id": run["id"]})
        response.raise_for_status()
        return [
            s["message"].removeprefix("worker ")
            for s in response.json()
            if s["type"] == "RUNNING" and (s.get("message") or "").startswith("worker ")
        ]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh PostgreSQL database and server for each test, torn down after it.
    (Here rather than in a conftest.py: a second `conftest` module would shadow the one the
    rest of the suite imports from.)"""
    built = Cluster(
        Path(tempfile.mkdtemp(prefix="flowdeck-scale-")),
        api_processes=int(os.environ.get("FLOWDECK_SCALE_API_PROCESSES") or 1),
    )
    built.start()
    try:
        yield built
    finally:
        built.stop()


@pytest.fixture
def cluster_with_own_redis() -> Iterator[tuple[Cluster, RedisServer]]:
    """As `cluster`, on a Redis of its own (messaging and result storage) that the test can kill."""
    root = Path(tempfile.mkdtemp(prefix="flowdeck-scale-"))
    own_redis = RedisServer(root / "redis").start()
    built = Cluster(root, redis_base=own_redis.url, redis_db=0)
    try:
        built.start()
        yield built, own_redis
    finally:
        built.stop()
        own_redis.kill()


def submit_batch(api_url: str, token: str, workflow_id: str, inputs: list[dict[str, Any]]) -> list[str]:
    """Start executions through `flowdeck api`'s batch endpoint (1,000 at most per call)."""
    ids: list[str] = []
    with httpx.Client(timeout=1800, headers={"Authorization": f"Bearer {token}"}) as client:
        for start in range(0, len(inputs), 1000):
            response = client.post(
                f"{api_url}/workflow/workflow-executions/batch",
                json={"workflow_id": workflow_id, "inputs": inputs[start : start + 1000]},
            )
            assert response.status_code == 202, response.text
            ids += [e["execution_id"] for e in response.json()["executions"]]
    return ids


async def _admin_sql(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 3), "n": len(ordered)}
