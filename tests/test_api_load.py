"""Load: 200 concurrent sync calls of a 5-step workflow over HTTP all succeed, correctly."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
from support.api import AUTH, ApiServer

CALLS = 200


async def _call(client: httpx.AsyncClient, n: int) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    response = await client.post(
        "/workflow/workflow-executions",
        json={"workflow_id": "five_steps", "workflow_version": "latest", "input_data": {"n": n}},
    )
    return time.perf_counter() - began, response


async def _burst(url: str) -> list[tuple[float, httpx.Response]]:
    limits = httpx.Limits(max_connections=CALLS, max_keepalive_connections=CALLS)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(_call(client, n) for n in range(CALLS)))


def test_200_concurrent_sync_calls_all_succeed_with_their_own_output(api: ApiServer) -> None:
    results = asyncio.run(_burst(api.url))
    ids = set()
    for n, (_, response) in enumerate(results):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        assert body["output"] == {
            "n": n,
            "doubled": 2 * n,
            "parity": "even" if n % 2 == 0 else "odd",
            "size": "big" if n >= 100 else "small",
            "execution_id": body["execution_id"],
        }
        ids.add(body["execution_id"])
    assert len(ids) == CALLS
    latencies = sorted(seconds * 1000 for seconds, _ in results)
    print(f"{CALLS} concurrent sync calls: p50 {statistics.median(latencies):.0f} ms, max {latencies[-1]:.0f} ms")
