"""`flowdeck worker`: one long-lived process that executes async work in-process.

Plain Prefect starts a Python process per run and polls every 10 s; a flowdeck execution
is a few milliseconds of work, so the worker instead
- learns of new runs from Prefect's event stream (`prefect.flow-run.Scheduled`, tens of
  milliseconds) and, as a safety net, polls for runs due within a look-ahead window, arming
  a timer for each so a Wait resumes at its due time rather than at the next poll;
- claims a run through Prefect's orchestration (`Scheduled -> Running`, which the server
  grants to exactly one claimant in one write: see `store.transitions.claim`), then runs it on its event
  loop; nothing is held while an execution waits (it is only a `Scheduled` row);
- shares work without a thundering herd: each run has one preferred worker among the live
  ones (rendezvous hashing of the run id over the names that heartbeat in the work pool),
  which claims it at once; the others leave it alone unless it is still unclaimed
  `claim_grace` seconds after its due time (its owner died or is full). Every worker racing
  for every run would cost the server a read and a refused write per worker per run;
- heartbeats as a worker of the `flowdeck` work pool and takes over the runs of workers
  whose heartbeat stopped (and of sync callers that died), rescheduling them so they
  resume from their journal.

`scheduling` holds polling, events, timers and claiming; `liveness` the heartbeat and the
recovery of dead executors' runs; `base` the settings and the shared state.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flowdeck.errors import PrefectUnavailable
from flowdeck.execution.engine import Engine
from flowdeck.execution.reloading import Stamp
from flowdeck.execution.worker.base import WorkerSettings, log, preferred_worker, worker_name
from flowdeck.execution.worker.liveness import Liveness
from flowdeck.store.deployments import ensure_work_pool
from flowdeck.store.event_batches import EventBatches
from flowdeck.store.logs import flush_events

__all__ = ["Worker", "WorkerSettings", "preferred_worker", "worker_name"]


@dataclass
class Worker(Liveness):
    engine: Engine
    name: str = field(default_factory=worker_name)
    settings: WorkerSettings = field(default_factory=WorkerSettings.from_env)
    project_dir: Any = None
    executed: int = 0
    _armed: dict[UUID, asyncio.Task[None]] = field(default_factory=dict)
    _running: dict[UUID, tuple[asyncio.Task[Any], asyncio.Event]] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _unknown: set[UUID] = field(default_factory=set)
    _stamp: Stamp | None = None
    _peers: list[str] = field(default_factory=list)  # live workers of the pool, this one included
    _claimed: set[UUID] = field(default_factory=set)  # runs between claim and end, in this process
    _passed_over: dict[UUID, datetime] = field(default_factory=dict)  # another's run -> when anyone may take it
    _orphans_checked_at: datetime = datetime.min.replace(tzinfo=UTC)  # the last sweep for runs nobody serves
    _event_batches: EventBatches | None = None

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._event_batches = EventBatches(self.api)
        self.engine.drainer.start()  # this process also writes the outbox to Prefect
        await ensure_work_pool(self.api)
        await self._sync_deployments()
        await self._heartbeat_once()
        loops = [
            asyncio.create_task(self._loop(self._heartbeat_once, self.settings.heartbeat_interval), name="heartbeat"),
            asyncio.create_task(self._loop(self._poll_once, self.settings.poll_interval), name="poll"),
            asyncio.create_task(self._loop(self._recover_once, max(1.0, self.settings.dead_after / 3)), name="recover"),
            asyncio.create_task(self._listen(), name="events"),
        ]
        try:
            await self._poll_once()
        except PrefectUnavailable as error:
            log.warning("first poll failed: %s", error)
        if ready is not None:
            ready.set()
        try:
            await self._stop.wait()
        finally:
            for task in loops + list(self._armed.values()):
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            # Executions in flight finish their current step boundary on cancel and are
            # rescheduled for another worker (or this one after a restart).
            for running, _ in list(self._running.values()):
                running.cancel()
            await asyncio.gather(*(t for t, _ in self._running.values()), return_exceptions=True)
            if self._event_batches is not None:
                await self._event_batches.close()
            await flush_events()
            log.info("prefect requests: %s", json.dumps(dict(self.api.counts), sort_keys=True))

    def stop(self) -> None:
        self._stop.set()
