"""Flow runs read by id, many in one request.

A worker learns of new runs from Prefect's event stream, and a burst of submissions makes
a burst of `Scheduled` events: reading each run on its own cost the server a request per
execution (about half a state write). Reads asked for within `WINDOW_SECONDS` of each other
go out as one `flow_runs/filter` instead.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from prefect.client.schemas.objects import FlowRun

from flowdeck.store.prefect_api import PrefectAPI

WINDOW_SECONDS = 0.01
MAX_IDS = 100  # per request


class FlowRunReads:
    def __init__(self, api: PrefectAPI, window: float = WINDOW_SECONDS) -> None:
        self.api = api
        self.window = window
        self._waiting: dict[UUID, list[asyncio.Future[FlowRun | None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._reading: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def read(self, flow_run_id: UUID) -> FlowRun | None:
        """The flow run as Prefect has it now (None: Prefect has no such run)."""
        future: asyncio.Future[FlowRun | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(flow_run_id, []).append(future)
        if len(self._waiting) >= MAX_IDS:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self._send)
        return await future

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, {}
        if batch:
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)

    async def _read(self, batch: dict[UUID, list[asyncio.Future[FlowRun | None]]]) -> None:
        try:
            runs = await self.api.read_flow_runs(
                {"flow_runs": {"id": {"any_": [str(i) for i in batch]}}, "limit": len(batch)}
            )
        except Exception as error:  # each reader gets the error its own read would have
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        found = {run.id: run for run in runs}
        for flow_run_id, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(flow_run_id))
