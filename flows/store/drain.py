"""The drain: writes what the outbox committed to Prefect, behind the callers' answers.

One drainer (an asyncio task) runs in every flowdeck process that opens the outbox (API,
worker, CLI, dashboard). Per execution, in order:

- `created` becomes the flow run, with the execution id as its idempotency key (Prefect
  cannot take a chosen id; it returns the run it already has for a key), so a replay never
  makes a second run. A sync execution that already ended when its drain starts is created
  straight in its final state (one write instead of three); one handed off is created in
  its `HandedOff`/`Waiting` state after its journal is in result storage;
- `event` and `log` entries go in one request each per batch (`POST /events`, `/logs/`);
  events keep the ids they were made with, so a replay records nothing twice;
- `final` writes the outcome record, then the final state; `handoff` writes the journal,
  then the state a worker takes over from.

Only then is the drain's progress recorded (`Outbox.mark_drained`), under the execution's
lease: a crash in between writes the batch again, idempotently. Prefect unreachable: the
drain backs off (0.5 s doubling to 5 s) and retries; the entries wait on disk.

A sync execution whose process died before it ended (`Outbox.orphans`) is adopted: the
drainer appends a hand-off carrying the finished steps' journal, so a worker continues
after the last finished step instead of running the execution again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import State
from prefect.states import Running, Scheduled

from flowdeck.errors import FlowdeckError, PrefectUnavailable
from flowdeck.store import encoding, journal, transitions
from flowdeck.store.deployments import WORK_POOL
from flowdeck.store.events import with_flow_run
from flowdeck.store.outbox import Entry, ExecutionRow, Outbox
from flowdeck.store.prefect_api import PrefectAPI

log = logging.getLogger("flowdeck.drain")

CONCURRENT_EXECUTIONS = 16  # executions drained at once per process
BATCH_ENTRIES = 500  # entries read per execution per pass (memory stays bounded)
EVENTS_PER_REQUEST = 200
IDLE_POLL_SECONDS = 0.5  # how often an idle drainer looks for other processes' leftovers
MAX_BACKOFF_SECONDS = 5.0
HOLD_OPEN_SYNC_SECONDS = 1.0

DeploymentResolver = Callable[[dict[str, Any]], Awaitable[UUID]]


class Drainer:
    def __init__(self, api: PrefectAPI, outbox: Outbox, deployment_for: DeploymentResolver | None = None) -> None:
        self.api = api
        self.outbox = outbox
        self.deployment_for = deployment_for
        self.claimant = f"{outbox.owner}#{id(self):x}"
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._progress: asyncio.Condition | None = None
        self._slots = asyncio.Semaphore(CONCURRENT_EXECUTIONS)
        self._busy: set[str] = set()
        self.failures = 0
        self.last_error: str | None = None
        self.requests = 0
        self._stopping = False

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or restart, in a new event loop) the drain task of this process."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._slots = asyncio.Semaphore(CONCURRENT_EXECUTIONS)
        self._busy = set()
        self._stopping = False
        if self._notify not in self.outbox.listeners:
            self.outbox.listeners.append(self._notify)
        self._task = loop.create_task(self._run(), name="flowdeck-drain")

    def _notify(self, execution_id: str) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    async def close(self, timeout: float = 5.0) -> None:
        """Drain what this process committed (for up to `timeout`), then stop; what is
        left waits in the outbox for the next flowdeck process."""
        if self._task is None or self._loop is not asyncio.get_running_loop():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._task.done():
            if not any(row.owner == self.outbox.owner for row in self.outbox.undrained(50)):
                break
            await asyncio.sleep(0.02)
        # A stop flag rather than only cancel(): Python 3.11's wait_for can swallow a cancel
        # that arrives as its inner wait ends, and the loop would go on.
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=1.0)
        except (TimeoutError, asyncio.CancelledError, Exception):
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        if self._notify in self.outbox.listeners:
            self.outbox.listeners.remove(self._notify)
        self._task = None

    async def flush(self, execution_id: str, timeout: float = 10.0) -> bool:
        """Wait until Prefect holds everything committed for `execution_id`."""
        await self.outbox.committed()
        self.start()
        deadline = time.monotonic() + timeout
        assert self._progress is not None
        while True:
            row = self.outbox.execution(execution_id)
            if row is None or row.drained:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            async with self._progress:
                try:
                    await asyncio.wait_for(self._progress.wait(), timeout=min(left, 0.1))
                except TimeoutError:
                    pass

    # the loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        delay = IDLE_POLL_SECONDS
        last_adopt = 0.0
        last_prune = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() - last_adopt > 1.0:
                    last_adopt = time.monotonic()
                    self._adopt_orphans()
                if time.monotonic() - last_prune > 60.0:
                    last_prune = time.monotonic()
                    self.outbox.prune()
                await self._pass()
                delay = IDLE_POLL_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Prefect down or refusing: the entries wait on disk
                self.failures += 1
                self.last_error = str(error)
                log.warning("drain: %s (retrying in %.1f s)", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_SECONDS)
            except TimeoutError:
                pass

    async def _pass(self) -> None:
        now = time.time()
        rows = [
            row for row in self.outbox.undrained(200) if row.execution_id not in self._busy and not self._hold(row, now)
        ]
        if not rows:
            return
        results = await asyncio.gather(*(self._drain_claimed(row) for row in rows), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _hold(self, row: ExecutionRow, now: float) -> bool:
        """A sync execution running in this process is left alone for its first second:
        most end by then and are created straight in their final state (one write), and
        no drain work competes with the call on its event loop."""
        return (
            row.mode == "sync"
            and not row.closed
            and row.owner == self.outbox.owner
            and now - row.created < HOLD_OPEN_SYNC_SECONDS
        )

    async def _drain_claimed(self, row: ExecutionRow) -> None:
        async with self._slots:
            if row.execution_id in self._busy or not self.outbox.claim(row.execution_id, self.claimant):
                return
            self._busy.add(row.execution_id)
            try:
                while True:
                    current = self.outbox.execution(row.execution_id)
                    if current is None or current.drained:
                        break
                    await self._drain_batch(current)
            finally:
                self._busy.discard(row.execution_id)
                self.outbox.release(row.execution_id, self.claimant)
                assert self._progress is not None
                async with self._progress:
                    self._progress.notify_all()

    def _adopt_orphans(self) -> None:
        for row in self.outbox.orphans():
            steps = {
                e.payload["key"]: e.payload["entry"]
                for e in self.outbox.entries(row.execution_id, 0, 100_000)
                if e.kind == "step"
            }
            payload = {
                "status": "running",
                "resume_at": None,
                "step_name": None,
                "journal": steps,
                "reason": "recovered: the process that ran this sync execution died; "
                "a worker continues after the last finished step",
            }
            if self.outbox.append_if_open(row.execution_id, "handoff", payload, status="running"):
                log.warning("drain: adopted %s (its process died)", row.execution_id)

    # one batch of one execution -------------------------------------------------------------
    async def _drain_batch(self, row: ExecutionRow) -> None:
        entries = self.outbox.entries(row.execution_id, row.drained_seq, BATCH_ENTRIES)
        if not entries:
            return
        flow_run_id = UUID(row.flow_run_id) if row.flow_run_id else None
        terminal = next((e for e in entries if e.kind in ("final", "handoff")), None)
        consumed: Entry | None = None
        if flow_run_id is None:
            created = entries[0] if entries[0].kind == "created" else self.outbox.entries(row.execution_id, 0, 1)[0]
            state = await self._initial_state(row, created, terminal)
            flow_run_id = await self._create(row, created, state)
            consumed = terminal if row.mode == "sync" else None
        # a sync step's output reaches the journal before its task run does, so a reader
        # (the dashboard, `flowdeck eval --execution`, on any machine) finds it as for an async step
        steps = {e.payload["key"]: e.payload["entry"] for e in entries if e.kind == "step"}
        await journal.write_steps(row.execution_id, steps)
        events = [with_flow_run(e.payload, flow_run_id) for e in entries if e.kind == "event"]
        for start in range(0, len(events), EVENTS_PER_REQUEST):
            self.requests += 1
            await self.api.create_events(events[start : start + EVENTS_PER_REQUEST])
        logs = [{**e.payload, "flow_run_id": str(flow_run_id)} for e in entries if e.kind == "log"]
        if logs:
            self.requests += 1
            await self.api.create_logs(logs)
        if terminal is not None and terminal is not consumed:
            await self._terminal(row, flow_run_id, terminal)
        if not self.outbox.mark_drained(row.execution_id, entries[-1].seq, self.claimant, str(flow_run_id)):
            raise PrefectUnavailable(f"lost the drain lease of {row.execution_id}")

    async def _initial_state(self, row: ExecutionRow, created: Entry, terminal: Entry | None) -> State[Any]:
        payload = created.payload
        if row.mode != "sync":
            return Scheduled(scheduled_time=datetime.fromisoformat(payload["scheduled_at"]))
        if terminal is not None and terminal.kind == "final":
            # Created without the result record as its data: Prefect 3.9 answers 500 to a
            # create whose state carries data (it lazy-loads the state's artifact while
            # serializing the answer). flowdeck reads the outcome by its key anyway.
            await self._final_state(row.execution_id, terminal.payload)
            return encoding.final_state(terminal.payload["status"], terminal.payload.get("error"), None)
        if terminal is not None and terminal.kind == "handoff":
            return await self._handoff_state(row.execution_id, terminal.payload)
        return Running(timestamp=datetime.fromisoformat(payload["started_at"]))

    async def _final_state(self, execution_id: str, payload: dict[str, Any]) -> State[Any]:
        record = await journal.write_outcome(execution_id, payload["record"])
        return encoding.final_state(payload["status"], payload.get("error"), record)

    async def _handoff_state(self, execution_id: str, payload: dict[str, Any]) -> State[Any]:
        """The journal goes first: a worker that sees the state finds what it takes over."""
        await journal.write_steps(execution_id, payload["journal"])
        if payload["status"] == "waiting" and payload.get("resume_at"):
            return encoding.waiting_state(
                payload.get("step_name") or "wait", datetime.fromisoformat(payload["resume_at"])
            )
        return encoding.handed_off_state(payload.get("step_name"))

    async def _terminal(self, row: ExecutionRow, flow_run_id: UUID, terminal: Entry) -> None:
        if terminal.kind == "final":
            state = await self._final_state(row.execution_id, terminal.payload)
        else:
            state = await self._handoff_state(row.execution_id, terminal.payload)
        self.requests += 1
        await transitions.set_state(self.api, flow_run_id, state, force=True)

    async def _create(self, row: ExecutionRow, created: Entry, state: State[Any]) -> UUID:
        payload = created.payload
        deployment_id = None
        if payload.get("deployment"):
            if self.deployment_for is None:
                raise PrefectUnavailable("this process cannot resolve deployments; another flowdeck process will")
            try:
                deployment_id = await self.deployment_for(payload)
            except PrefectUnavailable:
                raise
            except FlowdeckError as error:
                raise PrefectUnavailable(f"no deployment for {row.execution_id}: {error.message}") from None
        self.requests += 1
        flow_run = await self.api.create_flow_run(
            flow_name=payload["flow_name"],
            name=payload["name"],
            parameters=payload["parameters"],
            state=state,
            tags=payload["tags"],
            context=payload["context"],
            labels=payload["labels"],
            deployment_id=deployment_id,
            work_pool_name=WORK_POOL,
            idempotency_key=payload.get("idempotency_key") or row.execution_id,
            flow_version=payload.get("flow_version"),
        )
        return flow_run.id


def check_room(outbox: Outbox, limit: int) -> None:
    """Backpressure: refuse new executions while the outbox holds `limit` not yet in Prefect."""
    backlog = outbox.backlog()
    if backlog["executions"] >= limit:
        raise PrefectUnavailable(
            f"{backlog['executions']} executions are committed here but not yet in Prefect "
            f"(the oldest for {backlog['oldest_age_s']:.0f} s; the bound is {limit}): Prefect is down "
            "or behind; retry later, or check `flowdeck server status`"
        )
