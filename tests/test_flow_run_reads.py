"""Flow runs read by id, many in one request (flowdeck.store.flow_run_reads), against a real
Prefect server: each reader gets its own run, an unknown id gets None."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

from flowdeck.store.flow_run_reads import FlowRunReads
from flowdeck.store.prefect_api import PrefectAPI


def test_reads_asked_together_are_one_request_and_each_gets_its_run(prefect_api: str) -> None:
    async def go() -> None:
        async with PrefectAPI() as api:
            flow_id = await api.flow_id("flow-run-reads-test")
            ids = []
            for _ in range(5):
                body = {"flow_id": str(flow_id), "state": {"type": "SCHEDULED", "name": "Scheduled"}}
                ids.append(UUID((await api.request("POST", "/flow_runs/", json=body)).json()["id"]))
            reads = FlowRunReads(api)
            before = api.counts["read"]
            missing = uuid4()
            runs = await asyncio.gather(*(reads.read(i) for i in [*ids, missing, ids[0]]))
            assert api.counts["read"] - before == 1
            assert [r.id if r else None for r in runs] == [*ids, None, ids[0]]

    asyncio.run(go())
