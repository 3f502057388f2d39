"""Fewer concurrent writes to Prefect from the API process.

Prefect on SQLite serialises every write and answers 503 when they pile up; the engine's
client retries for a few seconds and then gives up. A burst of 200 sync calls makes 200
flow-run creates at once, and about one in ten failed that way (measured on 2 cores). The
API is the one place such bursts arrive, so its engine gets a client that lets a bounded
number of writes through at a time: the database does them one by one anyway, so the
burst takes the same time and none fails. Reads (GET, `/filter`, `/count`) pass freely.

    FLOWDECK_API_PREFECT_WRITES   writes in flight at once (default 2)

Flow-run creates go first: a caller waits for them, while the final states of finished
sync calls are written after the answer and can wait. Measured with 200 concurrent sync
calls on a loaded 2-core machine: 4 writes at a time still lost 8 calls to 503 (the
server writes task-run events too), 2 lost none.

This would belong in `flows.prefect_api.PrefectAPI` itself (the worker and batch starts
meet the same limit); until then it lives here, as a subclass.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from flows.prefect_api import PrefectAPI

WRITES_ENV = "FLOWDECK_API_PREFECT_WRITES"
DEFAULT_WRITES = 2


def _is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or path.rstrip("/").endswith(("/filter", "/count"))


def _is_create(method: str, path: str) -> bool:
    return method == "POST" and (path.rstrip("/") == "/flow_runs" or path.endswith("/create_flow_run"))


class GatedPrefectAPI(PrefectAPI):
    def __init__(self, api_url: str | None = None, writes: int | None = None) -> None:
        super().__init__(api_url)
        self._writes = asyncio.Semaphore(writes or int(os.environ.get(WRITES_ENV) or DEFAULT_WRITES))
        self._creates_waiting = 0
        self._no_creates = asyncio.Event()
        self._no_creates.set()

    async def request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        if _is_read(method, path):
            return await super().request(method, path, json=json, **kwargs)
        create = _is_create(method, path)
        if create:
            self._creates_waiting += 1
            self._no_creates.clear()
        else:
            while self._creates_waiting:
                await self._no_creates.wait()
        try:
            await self._writes.acquire()
        finally:
            if create:
                self._creates_waiting -= 1
                if not self._creates_waiting:
                    self._no_creates.set()
        try:
            return await super().request(method, path, json=json, **kwargs)
        finally:
            self._writes.release()


__all__ = ["GatedPrefectAPI"]
