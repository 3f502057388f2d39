"""`flowdeck worker`: one long-lived process that executes async work in-process.

Plain Prefect starts a Python process per run and polls every 10 s; a flowdeck execution
is a few milliseconds of work, so the worker instead
- learns of new runs from Prefect's event stream (`prefect.flow-run.Scheduled`, tens of
  milliseconds) and, as a safety net, polls for runs due within a look-ahead window, arming
  a timer for each so a Wait resumes at its due time rather than at the next poll;
- claims a run through Prefect's orchestration (`Scheduled -> Pending`, which the server
  grants to exactly one claimant, as Prefect's own workers do), then runs it on its event
  loop; nothing is held while an execution waits (it is only a `Scheduled` row);
- shares work without a thundering herd: each run has one preferred worker among the live
  ones (rendezvous hashing of the run id over the names that heartbeat in the work pool),
  which claims it at once; the others leave it alone unless it is still unclaimed
  `claim_grace` seconds after its due time (its owner died or is full). Every worker racing
  for every run would cost the server a read and a refused write per worker per run;
- heartbeats as a worker of the `flowdeck` work pool and takes over the runs of workers
  whose heartbeat stopped (and of sync callers that died), rescheduling them so they
  resume from their journal.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Pending, Running, Scheduled

from flowdeck.execution import durable
from flowdeck.store import recording
from flowdeck.store.deployments import WORK_POOL, ensure_work_pool, sync_deployments
from flowdeck.errors import FlowdeckError, PrefectUnavailable
from flowdeck.execution.service import Flowdeck

log = logging.getLogger("flowdeck.worker")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass
class WorkerSettings:
    concurrency: int = 100
    poll_interval: float = 2.0
    lookahead: float = 15.0
    heartbeat_interval: float = 2.0
    dead_after: float = 15.0  # a worker silent this long has its runs taken over
    sync_grace: float = 30.0  # a sync run this far past its limit lost its caller
    claim_grace: float = 2.0  # a run still unclaimed this long after its due time: anyone takes it

    @classmethod
    def from_env(cls) -> "WorkerSettings":
        return cls(
            concurrency=int(_env_float("FLOWDECK_WORKER_CONCURRENCY", 100)),
            poll_interval=_env_float("FLOWDECK_WORKER_POLL_INTERVAL", 2.0),
            lookahead=_env_float("FLOWDECK_WORKER_LOOKAHEAD", 15.0),
            heartbeat_interval=_env_float("FLOWDECK_WORKER_HEARTBEAT", 2.0),
            dead_after=_env_float("FLOWDECK_WORKER_DEAD_AFTER", 15.0),
            sync_grace=_env_float("FLOWDECK_SYNC_GRACE", 30.0),
            claim_grace=_env_float("FLOWDECK_WORKER_CLAIM_GRACE", 2.0),
        )


def worker_name() -> str:
    return f"flowdeck-{socket.gethostname()}-{os.getpid()}"


def preferred_worker(flow_run_id: UUID, workers: list[str]) -> str | None:
    """Rendezvous hashing: every worker computes the same owner from the same list, and a
    worker joining or leaving moves only its own share of the runs."""

    def weight(name: str) -> int:
        digest = hashlib.blake2b(f"{name}|{flow_run_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    return max(workers, key=weight) if workers else None


@dataclass
class Worker:
    engine: Flowdeck
    name: str = field(default_factory=worker_name)
    settings: WorkerSettings = field(default_factory=WorkerSettings.from_env)
    project_dir: Any = None
    executed: int = 0
    _armed: dict[UUID, asyncio.Task[None]] = field(default_factory=dict)
    _running: dict[UUID, tuple[asyncio.Task[Any], asyncio.Event]] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _unknown: set[UUID] = field(default_factory=set)
    _stamp: tuple[tuple[str, float], ...] | None = None
    _peers: list[str] = field(default_factory=list)  # live workers of the pool, this one included
    _claimed: set[UUID] = field(default_factory=set)  # runs between claim and end, in this process
    _passed_over: dict[UUID, datetime] = field(default_factory=dict)  # another's run -> when anyone may take it

    @property
    def api(self):  # type: ignore[no-untyped-def]
        return self.engine.api

    async def run(self, ready: asyncio.Event | None = None) -> None:
        from pathlib import Path

        self._slots = asyncio.Semaphore(self.settings.concurrency)
        await ensure_work_pool(self.api)
        await sync_deployments(self.api, self.engine.catalog.definitions, Path(self.project_dir or Path.cwd()))
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
            for flow_run_id, (task, _) in list(self._running.items()):
                task.cancel()
            await asyncio.gather(*(t for t, _ in self._running.values()), return_exceptions=True)
            await recording.flush_events()

    def stop(self) -> None:
        self._stop.set()

    def owns(self, flow_run_id: UUID) -> bool:
        if self.name not in self._peers:
            return True  # not yet listed (just started): behave as the only worker
        return preferred_worker(flow_run_id, self._peers) == self.name

    async def _loop(self, step: Any, interval: float) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the loop must survive a Prefect restart
                log.warning("%s failed: %s", step.__name__, error)
            await asyncio.sleep(interval)

    # discovery -----------------------------------------------------------------------
    def _workflow_tags(self) -> list[str]:
        return sorted({f"workflow:{d.id}" for d in self.engine.catalog.definitions}) or ["workflow:"]

    def _definitions_stamp(self) -> tuple[tuple[str, float], ...]:
        from pathlib import Path

        directory = Path(self.engine.catalog.directory)
        files = list(directory.rglob("*.yaml")) + list(directory.rglob("*.yml"))
        return tuple(sorted((str(p), p.stat().st_mtime) for p in files if p.exists()))

    async def _reload_if_changed(self) -> None:
        """Definitions edited, added or removed: reload them and re-sync the deployments."""
        from pathlib import Path

        stamp = self._definitions_stamp()
        if self._stamp is None:
            self._stamp = stamp
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self.engine.reload(self.engine.catalog.directory)
        self._unknown.clear()
        await sync_deployments(self.api, self.engine.catalog.definitions, Path(self.project_dir or Path.cwd()))
        log.info("definitions changed: now serving %d", len(self.engine.catalog.definitions))

    async def _poll_once(self) -> None:
        await self._reload_if_changed()
        horizon = datetime.now(timezone.utc) + timedelta(seconds=self.settings.lookahead)
        runs = await self.api.read_flow_runs(
            {
                "flow_runs": {
                    # only workflows this worker has definitions for: others' runs must
                    # not crowd its own out of the page
                    "tags": {"all_": [recording.FLOWDECK_TAG], "any_": self._workflow_tags()},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                    "next_scheduled_start_time": {"before_": horizon.isoformat()},
                    # runs already armed here, or left to their owner until they are
                    # overdue, are not sent again: with thousands due, the look-ahead
                    # window would otherwise return the same page to every worker each poll
                    "id": {"not_any_": self._not_wanted()},
                },
                "sort": "NEXT_SCHEDULED_START_TIME_ASC",
                "limit": 200,
            }
        )
        now = datetime.now(timezone.utc)
        grace = timedelta(seconds=self.settings.claim_grace)
        for flow_run in runs:
            if self.owns(flow_run.id) or _due(flow_run) + grace < now:
                self._passed_over.pop(flow_run.id, None)
                self.arm(flow_run.id, _due(flow_run), flow_run)
            else:
                self._passed_over[flow_run.id] = _due(flow_run) + grace

    def _not_wanted(self) -> list[str]:
        """Ids the poll should not return: armed here, or another worker's and not overdue."""
        now = datetime.now(timezone.utc)
        for flow_run_id, anyones_from in list(self._passed_over.items()):
            if anyones_from <= now:
                del self._passed_over[flow_run_id]  # overdue: the next poll returns it again
        return [str(i) for i in [*self._armed, *self._passed_over][:1000]]

    async def _listen(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        event_filter = EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.Scheduled", "prefect.flow-run.Cancelling"])
        )
        while True:
            try:
                async with get_events_subscriber(filter=event_filter, reconnection_attempts=1000) as events:
                    async for event in events:
                        await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("event stream lost (%s); polling covers until it is back", error)
                await asyncio.sleep(1.0)

    async def _on_event(self, event: Any) -> None:
        tags = {r.id for r in event.related if r.role == "tag"}
        if f"prefect.tag.{recording.FLOWDECK_TAG}" not in tags:
            return
        if not any(f"prefect.tag.{tag}" in tags for tag in self._workflow_tags()):
            return  # a workflow this worker has no definition for
        flow_run_id = UUID(event.resource.id.rsplit(".", 1)[-1])
        if event.event.endswith("Cancelling"):
            running = self._running.get(flow_run_id)
            if running:
                running[1].set()
                running[0].cancel()
            return
        if not self.owns(flow_run_id):
            return  # its owner claims it; the poll catches it if the owner does not
        flow_run = await self.api.read_flow_run(flow_run_id)
        if flow_run is not None and flow_run.state_type == StateType.SCHEDULED:
            self.arm(flow_run.id, _due(flow_run), flow_run)

    def arm(self, flow_run_id: UUID, due: datetime, flow_run: FlowRun | None = None) -> None:
        """Start a timer that claims the run when it falls due (once per run). `flow_run` is
        the run as just read, if it was: a read older than a second is repeated at the claim."""
        if flow_run_id in self._armed or flow_run_id in self._running:
            return
        self._armed[flow_run_id] = asyncio.create_task(self._claim_when_due(flow_run_id, due, flow_run))

    def arm_if_soon(self, flow_run_id: UUID, due: datetime) -> None:
        """A run this worker just suspended: armed now only if due within the look-ahead, so
        that thousands of long waits cost no timers here; the poll arms the others in time."""
        if (due - datetime.now(timezone.utc)).total_seconds() <= self.settings.lookahead:
            self.arm(flow_run_id, due)

    async def _claim_when_due(self, flow_run_id: UUID, due: datetime, flow_run: FlowRun | None) -> None:
        try:
            read_at = asyncio.get_running_loop().time()
            delay = (due - datetime.now(timezone.utc)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            assert self._slots is not None
            await self._slots.acquire()
            try:
                # A run read a moment ago needs no second read: the claim itself is refused
                # if its state moved on meanwhile. An older read may be stale (the run
                # suspended again, its attempt count changed): read it again.
                fresh = flow_run is not None and asyncio.get_running_loop().time() - read_at < 1.0
                await self._claim_and_execute(flow_run_id, flow_run if fresh else None)
            finally:
                self._slots.release()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("execution %s: %s", recording.execution_id_for(flow_run_id), error)
        finally:
            if self._armed.get(flow_run_id) is asyncio.current_task():  # not a re-armed successor
                del self._armed[flow_run_id]

    # execution -----------------------------------------------------------------------
    async def _claim_and_execute(self, flow_run_id: UUID, flow_run: FlowRun | None = None) -> None:
        self._claimed.add(flow_run_id)
        try:
            await self._claim_and_execute_claimed(flow_run_id, flow_run)
        finally:
            self._claimed.discard(flow_run_id)

    async def _claim_and_execute_claimed(self, flow_run_id: UUID, flow_run: FlowRun | None) -> None:
        if flow_run is None:
            flow_run = await self.api.read_flow_run(flow_run_id)
            if flow_run is not None and flow_run.state_type == StateType.SCHEDULED:
                due = _due(flow_run)
                if due > datetime.now(timezone.utc) + timedelta(seconds=0.05):
                    # it suspended again since it was armed: not due yet
                    self._armed.pop(flow_run_id, None)
                    self.arm_if_soon(flow_run_id, due)
                    return
        if flow_run is None or flow_run.state_type != StateType.SCHEDULED:
            return
        try:
            definition = self._definition_for(flow_run)
        except FlowdeckError as error:
            # Another worker (with other definitions) may know it: leave the run alone.
            if flow_run_id not in self._unknown:
                self._unknown.add(flow_run_id)
                log.warning("not claiming %s: %s", recording.execution_id_for(flow_run_id), error.message)
            return
        claim = await self.api.set_flow_run_state(flow_run_id, Pending(message=f"claimed by {self.name}"))
        if claim.status.value == "WAIT":  # early: the server says how long
            delay = (claim.details.delay_seconds if claim.details else 0.1) or 0.1
            await asyncio.sleep(delay)
            claim = await self.api.set_flow_run_state(flow_run_id, Pending(message=f"claimed by {self.name}"))
        if claim.status.value != "ACCEPT":
            return  # another worker has it, or it was cancelled
        from flowdeck.runtime.inputs import input_problems

        problems = input_problems(definition, flow_run.parameters or {})
        started = await self.api.set_flow_run_state(flow_run_id, Running(message=f"worker {self.name}"))
        if started.status.value != "ACCEPT":
            return
        if problems:
            from flowdeck.runtime.interpreter import Outcome
            from flowdeck.execution.sync import record_outcome

            listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            await record_outcome(
                self.api,
                flow_run_id,
                Outcome(status="failed", error={"step_name": None, "message": f"input_data is not valid: {listed}"}),
            )
            return
        cancel = asyncio.Event()
        task = asyncio.create_task(
            durable.execute_flow_run(
                self.api,
                flow_run,
                definition,
                http=self.engine.http,
                resolve_workflow=self.engine._resolve_for_step,
                cancel_requested=cancel,
            )
        )
        self._running[flow_run_id] = (task, cancel)
        try:
            disposition = await task
        except asyncio.CancelledError:
            if cancel.is_set():
                await durable.mark_cancelled(self.api, flow_run_id)
            elif self._stop.is_set():
                await self._reschedule(flow_run_id, f"worker {self.name} shut down")
            raise
        finally:
            self._running.pop(flow_run_id, None)
        self.executed += 1
        if disposition.kind in ("suspended", "retrying") and disposition.resume_at is not None:
            self.arm_if_soon(flow_run_id, disposition.resume_at)

    def _definition_for(self, flow_run: FlowRun) -> Any:
        from flowdeck.store.executions import tag_value

        workflow_id = tag_value(flow_run, "workflow")
        version = tag_value(flow_run, "version")
        if workflow_id is None or version is None:
            raise PrefectUnavailable("the flow run has no workflow/version tags")
        return self.engine.catalog.resolve(workflow_id, int(version), allow_draft=True)

    async def _reschedule(self, flow_run_id: UUID, reason: str) -> None:
        await self.api.set_flow_run_state(
            flow_run_id,
            Scheduled(scheduled_time=datetime.now(timezone.utc), name="Scheduled", message=reason),
            force=True,
        )

    # liveness ------------------------------------------------------------------------
    async def _heartbeat_once(self) -> None:
        await self.api.request(
            "POST",
            f"/work_pools/{WORK_POOL}/workers/heartbeat",
            json={"name": self.name, "heartbeat_interval_seconds": int(max(1, self.settings.heartbeat_interval))},
        )

    async def _recover_once(self) -> None:
        """Reschedule runs whose executor is gone: a silent worker or a dead sync caller."""
        response = await self.api.request("POST", f"/work_pools/{WORK_POOL}/workers/filter", json={"limit": 200})
        now = datetime.now(timezone.utc)
        alive = {
            w["name"]
            for w in response.json()
            if w.get("last_heartbeat_time")
            and (now - datetime.fromisoformat(w["last_heartbeat_time"])).total_seconds() < self.settings.dead_after
        }
        self._peers = sorted(alive)
        runs: list[FlowRun] = []
        while True:  # every page: with many workers, more than one page of runs is in flight
            page = await self.api.read_flow_runs(
                {
                    "flow_runs": {
                        "tags": {"all_": [recording.FLOWDECK_TAG], "any_": self._workflow_tags()},
                        "state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}},
                    },
                    "sort": "ID_DESC",
                    "limit": 200,
                    "offset": len(runs),
                }
            )
            runs += page
            if len(page) < 200:
                break
        for flow_run in runs:
            if flow_run.id in self._claimed:
                continue
            owner = _owner_of(flow_run)
            since = flow_run.state.timestamp if flow_run.state else now
            if owner is None:  # a sync caller: presumed dead well past its limit
                limit = self._sync_limit(flow_run)
                if flow_run.start_time and (now - flow_run.start_time).total_seconds() < limit + self.settings.sync_grace:
                    continue
            elif owner == self.name:
                pass  # ours, yet no longer running here: its end could not be recorded (Prefect was down)
            elif owner in alive or (now - since).total_seconds() < self.settings.dead_after:
                continue
            if flow_run.state_type == StateType.CANCELLING:
                await durable.mark_cancelled(self.api, flow_run.id)
                continue
            # Re-read just before the forced reschedule: a run that moved on meanwhile (ended,
            # or claimed again here) must not be sent back.
            current = await self.api.read_flow_run(flow_run.id)
            if (current is None or flow_run.id in self._claimed or current.state is None
                    or flow_run.state is None or current.state.timestamp != flow_run.state.timestamp):
                continue
            who = ("this worker (its end was not recorded)" if owner == self.name
                   else f"worker {owner}" if owner else "the sync caller")
            await self._reschedule(flow_run.id, f"recovered: {who} stopped responding")
            self.arm(flow_run.id, datetime.now(timezone.utc))

    def _sync_limit(self, flow_run: FlowRun) -> float:
        from flowdeck import settings

        try:
            definition = self._definition_for(flow_run)
        except FlowdeckError:
            return settings.sync_timeout_default()
        return definition.sync_timeout or settings.sync_timeout_default()


def _due(flow_run: FlowRun) -> datetime:
    scheduled = flow_run.state.state_details.scheduled_time if flow_run.state else None
    return scheduled or datetime.now(timezone.utc)


def _owner_of(flow_run: FlowRun) -> str | None:
    """The worker named in the claim/running state message, None for sync callers."""
    message = (flow_run.state.message if flow_run.state else None) or ""
    for prefix in ("claimed by ", "worker "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return None
