"""`bench/sync.py`'s section over HTTP: 1, 50 and 200 concurrent sync calls of `bench_http`
(5 steps, one http GET to a local server) through a real `flowdeck api` process, beside
the same calls to the no-Prefect baseline (`bench/_unrecorded_api.py`: the same API app
and uvicorn settings over an engine that records nothing), in the same run, on the same
Prefect server `bench/sync.py` started.

Drain lag is answer -> the execution's final state readable in Prefect, found by polling
Prefect every POLL_SECONDS for the executions' final flow runs (so it is exact to about
that interval; the poll's reads load the server a little, as a dashboard would).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFINITIONS, ROOT, ms, p50, percentile

from flowdeck.local.daemons import terminate_group
from flowdeck.local.spawn import answers, flowdeck_command, free_port, spawn

TOKEN = "bench-sync-http-token"
SINGLE_CALLS = 30
CONCURRENCY = (50, 200)
POLL_SECONDS = 0.05
IN_PREFECT_TIMEOUT = 120.0
FINAL_TYPES = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]
FAILURES: list[str] = []  # what failed calls answered, the first few reported


class _Servers:
    """The target of the http step, `flowdeck api` and the no-Prefect baseline, each its own process."""

    def __init__(self) -> None:
        home = Path(os.environ["FLOWDECK_HOME"])
        env = dict(os.environ, FLOWDECK_API_TOKENS=TOKEN)
        target_port, api_port, plain_port = free_port(), free_port(), free_port()
        self.target_url = f"http://127.0.0.1:{target_port}/ok.json"
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.plain_url = f"http://127.0.0.1:{plain_port}"
        self._processes: list[Any] = []
        target = [sys.executable, str(ROOT / "bench" / "_target.py"), str(target_port)]
        self._start(target, home / "target.log", env, ROOT, self.target_url)
        self._start(flowdeck_command("api", "--port", str(api_port)), home / "api.log", env, ROOT, self.api_url)
        plain_env = dict(env, FLOWDECK_HOME=tempfile.mkdtemp(prefix="flowdeck-bench-plain-"))
        plain = [sys.executable, str(ROOT / "bench" / "_unrecorded_api.py"), str(plain_port), str(DEFINITIONS)]
        self._start(plain, home / "plain-api.log", plain_env, ROOT, self.plain_url)

    def _start(self, argv: list[str], log: Path, env: dict[str, str], cwd: Path, url: str) -> None:
        spawned = spawn(argv, log, env=env, cwd=cwd, fresh_log=True)
        self._processes.append(spawned.process)
        probe = url if url.endswith(".json") else f"{url}/healthz"
        spawned.wait_ready(lambda: answers(probe), 90, interval=0.2)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                terminate_group(process.pid)


async def _calls(client: Any, base_url: str, target_url: str, n: int) -> list[tuple[float, float, str | None]]:
    """`n` sync calls at once: (latency ms, answered at (time.time()), execution id or None if failed)."""

    async def one(i: int) -> tuple[float, float, str | None]:
        body = {"workflow_id": "bench_http", "input_data": {"url": target_url, "n": i}}
        started = time.perf_counter()
        try:
            response = await client.post(f"{base_url}/workflow/workflow-executions", json=body)
            answer = response.json()
            ok = response.status_code == 200 and answer["status"] == "success" and answer["output"]["status"] == 200
            failure = None if ok else f"{response.status_code}: {response.text[:300]}"
        except Exception as error:
            ok, answer, failure = False, {}, repr(error)
        if failure is not None:
            FAILURES.append(failure)
        return ms(time.perf_counter() - started), time.time(), answer.get("execution_id") if ok else None

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _in_prefect_at(api: Any, answered: dict[str, float]) -> dict[str, float]:
    """When each execution's final state was first seen in Prefect (time.time())."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + IN_PREFECT_TIMEOUT
    while len(seen) < len(answered) and time.monotonic() < deadline:
        pending = [e for e in answered if e not in seen]
        for start in range(0, len(pending), 200):
            page = pending[start : start + 200]
            runs = await api.read_flow_runs(
                {
                    "flow_runs": {"idempotency_key": {"any_": page}, "state": {"type": {"any_": FINAL_TYPES}}},
                    "limit": 200,
                }
            )
            now = time.time()
            for run in runs:
                seen.setdefault(str(run.idempotency_key), now)
        await asyncio.sleep(POLL_SECONDS)
    return seen


def _figures(results: list[tuple[float, float, str | None]]) -> dict[str, Any]:
    latencies = [r[0] for r in results]
    return {
        "p50_ms": p50(latencies),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "failures": sum(1 for r in results if r[2] is None),
    }


async def _flowdeck_round(client: Any, api: Any, servers: _Servers, n: int) -> tuple[dict[str, Any], list[Any]]:
    results = await _calls(client, servers.api_url, servers.target_url, n)
    answered = {r[2]: r[1] for r in results if r[2] is not None}
    seen = await _in_prefect_at(api, answered)
    lags = [ms(seen[e] - at) for e, at in answered.items() if e in seen]
    figures = _figures(results)
    figures["drain_lag_p50_ms"] = p50(lags) if lags else None
    figures["drain_lag_p95_ms"] = percentile(lags, 95) if lags else None
    figures["not_in_prefect"] = len(answered) - len(seen)
    last_answer = max(answered.values()) if answered else time.time()
    figures["all_in_prefect_after_last_answer_ms"] = round(ms(max(seen.values()) - last_answer), 1) if seen else None
    return figures, results


async def _measure(servers: _Servers) -> dict[str, Any]:
    import httpx

    from flowdeck.store.prefect_api import PrefectAPI

    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    section: dict[str, Any] = {}
    # One client (one connection pool) per server: with a shared pool, the round that runs
    # second found the first one's 200 idle connections in it, had to close some of them to
    # open its own (the pool's limit), and paid httpcore's scan of every pooled connection
    # per request: about a second of the client's CPU in a round of 200, charged to
    # whichever server it called second (flowdeck's).
    async with (
        httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client,
        httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as plain_client,
        PrefectAPI() as api,
    ):
        for _ in range(3):  # warm-up: connections, imports, the first flow-run create
            await _calls(client, servers.api_url, servers.target_url, 1)
            await _calls(plain_client, servers.plain_url, servers.target_url, 1)
        # one call at a time, the two servers interleaved; flowdeck's drain awaited between calls
        single: list[Any] = []
        plain_single: list[Any] = []
        lags: list[float] = []
        for _ in range(SINGLE_CALLS):
            figures, results = await _flowdeck_round(client, api, servers, 1)
            single += results
            if figures["drain_lag_p50_ms"] is not None:
                lags.append(figures["drain_lag_p50_ms"])
            plain_single += await _calls(plain_client, servers.plain_url, servers.target_url, 1)
        one = _figures(single)
        one.update(
            drain_lag_p50_ms=p50(lags) if lags else None, drain_lag_p95_ms=percentile(lags, 95) if lags else None
        )
        one["no_prefect"] = _figures(plain_single)
        section["1"] = one
        for n in CONCURRENCY:
            # the baseline first: flowdeck's round leaves the Prefect server busy for a while
            # after its last record landed (event persister, task-run recorder), which would
            # otherwise slow the baseline down and flatter flowdeck's ratio
            await asyncio.sleep(3)
            plain = _figures(await _calls(plain_client, servers.plain_url, servers.target_url, n))
            await asyncio.sleep(1)
            figures, _ = await _flowdeck_round(client, api, servers, n)
            figures["no_prefect"] = plain
            section[str(n)] = figures
    for key in ("1", *map(str, CONCURRENCY)):
        figures = section[key]
        plain = figures["no_prefect"]["p50_ms"]
        figures["p50_ratio_vs_no_prefect"] = round(figures["p50_ms"] / plain, 2) if plain else None
    section["first_failures"] = FAILURES[:3]
    section["1"]["overhead_p50_ms"] = round(section["1"]["p50_ms"] - section["1"]["no_prefect"]["p50_ms"], 2)
    return section


def over_http() -> dict[str, Any]:
    """The HTTP section; the Prefect server must be running (bench/sync.py started it)."""
    servers = _Servers()
    try:
        return asyncio.run(_measure(servers))
    finally:
        servers.stop()
