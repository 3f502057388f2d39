"""The worker's settings, its name, the run-to-worker assignment, and the state its
scheduling and liveness halves share."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from flowdeck import settings
from flowdeck.execution.engine import Engine
from flowdeck.execution.reloading import Stamp
from flowdeck.store.event_batches import EventBatches
from flowdeck.store.prefect_api import PrefectAPI

log = logging.getLogger("flowdeck.worker")


@dataclass
class WorkerSettings:
    concurrency: int = 100
    poll_interval: float = 2.0
    lookahead: float = 15.0
    heartbeat_interval: float = 2.0
    dead_after: float = 15.0  # a worker silent this long has its runs taken over
    sync_grace: float = 30.0  # a sync run this far past its limit lost its caller
    claim_grace: float = 2.0  # a run still unclaimed this long after its due time: anyone takes it
    orphan_after: float = 60.0  # a run of a workflow no worker serves, unclaimed this long: refused

    @classmethod
    def from_env(cls) -> WorkerSettings:
        """Defaults overridden by FLOWDECK_WORKER_* and FLOWDECK_SYNC_GRACE (settings.py)."""
        overrides = settings.worker_overrides()
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name in overrides:
                value = overrides[item.name]
                values[item.name] = int(value) if item.name == "concurrency" else value
        return cls(**values)


def worker_name() -> str:
    return f"flowdeck-{socket.gethostname()}-{os.getpid()}"


def preferred_worker(flow_run_id: UUID, workers: list[str]) -> str | None:
    """Rendezvous hashing: every worker computes the same owner from the same list, and a
    worker joining or leaving moves only its own share of the runs."""

    def weight(name: str) -> int:
        digest = hashlib.blake2b(f"{name}|{flow_run_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    return max(workers, key=weight) if workers else None


class WorkerState:
    """What the worker's halves share (the fields of `Worker`)."""

    engine: Engine
    name: str
    settings: WorkerSettings
    project_dir: Any
    executed: int
    _armed: dict[UUID, asyncio.Task[None]]
    _running: dict[UUID, tuple[asyncio.Task[Any], asyncio.Event]]
    _slots: asyncio.Semaphore | None
    _stop: asyncio.Event
    _unknown: set[UUID]
    _stamp: Stamp | None
    _peers: list[str]  # live workers of the pool, this one included
    _claimed: set[UUID]  # runs between claim and end, in this process
    _passed_over: dict[UUID, datetime]  # another's run -> when anyone may take it
    _orphans_checked_at: datetime  # the last sweep for runs nobody serves
    _event_batches: EventBatches | None  # task-run events of all executions here, sent together

    @property
    def api(self) -> PrefectAPI:
        return self.engine.api

    def owns(self, flow_run_id: UUID) -> bool:
        if self.name not in self._peers:
            return True  # not yet listed (just started): behave as the only worker
        return preferred_worker(flow_run_id, self._peers) == self.name

    async def _loop(self, step: Callable[[], Awaitable[None]], interval: float) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the loop must survive a Prefect restart
                log.warning("%s failed: %s", getattr(step, "__name__", step), error)
            await asyncio.sleep(interval)
