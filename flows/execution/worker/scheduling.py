"""The worker's scheduling half: which runs to take and when.

New runs arrive through Prefect's event stream (`prefect.flow-run.Scheduled`); a poll for
runs due within the look-ahead window is the safety net. Each run gets a timer that claims
it when it falls due (`store.transitions.claim`: Prefect grants it to one claimant), then
it runs on this event loop as one durable attempt.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import FlowRun, StateType

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.errors import FlowdeckError, NotRunnable
from flowdeck.execution import durable, pinning, reloading
from flowdeck.execution.stored_definition import stored_definition
from flowdeck.execution.worker.base import WorkerState, log
from flowdeck.runtime.inputs import input_problems
from flowdeck.runtime.interpreter import Outcome
from flowdeck.store import encoding, transitions
from flowdeck.store.deployments import sync_deployments

# A claim that Prefect answers "not due for this long" is waited out up to this; longer, the
# run is armed again for its due time (or left to the poll, beyond the look-ahead).
CLAIM_WAIT_SECONDS = 0.5


class Scheduling(WorkerState):
    def _workflow_tags(self) -> list[str]:
        return encoding.workflow_tags(d.id for d in self.engine.catalog.definitions)

    def _definitions_stamp(self) -> reloading.Stamp:
        return reloading.stamp(self.engine.catalog.directory)

    async def _sync_deployments(self) -> None:
        await sync_deployments(self.api, self.engine.catalog.definitions, Path(self.project_dir or Path.cwd()))

    async def _reload_if_changed(self) -> None:
        """Definitions edited, added or removed: reload them and re-sync the deployments."""
        stamp = self._definitions_stamp()
        if self._stamp is None:
            self._stamp = stamp
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self.engine.reload(self.engine.catalog.directory)
        self._unknown.clear()
        await self._sync_deployments()
        log.info("definitions changed: now serving %d", len(self.engine.catalog.definitions))

    async def _poll_once(self) -> None:
        await self._reload_if_changed()
        await self._refuse_orphans()
        horizon = datetime.now(UTC) + timedelta(seconds=self.settings.lookahead)
        runs = await self.api.read_flow_runs(
            {
                "flow_runs": {
                    # only workflows this worker has definitions for: others' runs must
                    # not crowd its own out of the page
                    "tags": {"all_": [encoding.FLOWDECK_TAG], "any_": self._workflow_tags()},
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
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.settings.claim_grace)
        for flow_run in runs:
            due = encoding.due_of(flow_run)
            if self.owns(flow_run.id) or due + grace < now:
                self._passed_over.pop(flow_run.id, None)
                self.arm(flow_run.id, due, flow_run)
            else:
                self._passed_over[flow_run.id] = due + grace

    async def _refuse_orphans(self) -> None:
        """Refuse the runs nobody will ever run: of a workflow this worker has no definition
        for (or of none), still unclaimed `orphan_after` seconds past their due time. Every
        worker of a pool serves the same definitions (docs/scaling.md); runs that carry their
        own definition are left to the claim path. `orphan_after` <= 0: never."""
        if self.settings.orphan_after <= 0:
            return
        horizon = datetime.now(UTC) - timedelta(seconds=self.settings.orphan_after)
        if horizon < self._orphans_checked_at + timedelta(seconds=self.settings.orphan_after / 4):
            return  # at most four sweeps per orphan_after
        self._orphans_checked_at = horizon
        runs = await self.api.read_flow_runs(
            {
                "flow_runs": {
                    "tags": {"all_": [encoding.FLOWDECK_TAG]},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                    "next_scheduled_start_time": {"before_": horizon.isoformat()},
                },
                "sort": "NEXT_SCHEDULED_START_TIME_ASC",
                "limit": 50,
            }
        )
        served = {d.id for d in self.engine.catalog.definitions}
        for flow_run in runs:
            workflow_id = encoding.workflow_of(flow_run)
            if workflow_id in served or encoding.definition_source_of(flow_run) is not None:
                continue
            reason = f"no worker serves workflow '{workflow_id}'" if workflow_id else "the run names no workflow"
            await self._refuse(flow_run, reason + f" (unclaimed {self.settings.orphan_after:g} s after it was due)")

    async def _refuse(self, flow_run: FlowRun, reason: str) -> None:
        """Claim the run (so that no other worker starts it meanwhile), then fail it with why."""
        if await transitions.claim(self.api, flow_run.id, self.name):
            await self._refuse_claimed(flow_run.id, reason)

    async def _refuse_claimed(self, flow_run_id: UUID, reason: str) -> None:
        log.warning("refused %s: %s", encoding.execution_id_for(flow_run_id), reason)
        await transitions.refuse(self.api, flow_run_id, self.name, reason)

    async def _refusal(self, flow_run: FlowRun) -> str | None:
        """Why this worker may not run `flow_run`: a draft nobody pinned, a version or workflow
        it does not know, a run changed after flowdeck created it (None: it may run it)."""
        try:
            definition = self._definition_for(flow_run)
        except FlowdeckError:
            await self._reload_if_changed()  # a file added a moment ago: look again first
            try:
                definition = self._definition_for(flow_run)
            except FlowdeckError as error:
                return error.message
        return pinning.refusal(flow_run, definition)

    def _not_wanted(self) -> list[str]:
        """Ids the poll should not return: armed here, or another worker's and not overdue."""
        now = datetime.now(UTC)
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
        if not encoding.event_is_for(event, (d.id for d in self.engine.catalog.definitions)):
            return  # not flowdeck's, or a workflow this worker has no definition for
        flow_run_id = encoding.event_flow_run_id(event)
        if event.event.endswith("Cancelling"):
            running = self._running.get(flow_run_id)
            if running:
                running[1].set()
                running[0].cancel()
            return
        if not self.owns(flow_run_id):
            return  # its owner claims it; the poll catches it if the owner does not
        # Claimed at once and read after (`_claim_then_read`): the event is a read of the
        # state a moment ago; a run the scheduler made ahead of its time answers the claim
        # with how long to wait.
        self.arm(flow_run_id, datetime.now(UTC), announced=True)

    def arm(
        self, flow_run_id: UUID, due: datetime, flow_run: FlowRun | None = None, *, announced: bool = False
    ) -> None:
        """Start a timer that claims the run when it falls due (once per run). `flow_run` is
        the run as just read, if it was, `announced` that a Scheduled event just named it:
        either is older than a second at the claim, the run is read again first."""
        if flow_run_id in self._armed or flow_run_id in self._running:
            return
        claim = self._claim_when_due(flow_run_id, due, flow_run, announced)
        self._armed[flow_run_id] = asyncio.create_task(claim)

    def arm_if_soon(self, flow_run_id: UUID, due: datetime) -> None:
        """A run this worker just suspended: armed now only if due within the look-ahead, so
        that thousands of long waits cost no timers here; the poll arms the others in time."""
        if (due - datetime.now(UTC)).total_seconds() <= self.settings.lookahead:
            self.arm(flow_run_id, due)

    async def _claim_when_due(
        self, flow_run_id: UUID, due: datetime, flow_run: FlowRun | None, announced: bool = False
    ) -> None:
        try:
            read_at = asyncio.get_running_loop().time()
            delay = (due - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            assert self._slots is not None
            await self._slots.acquire()
            try:
                # A run read (or announced) a moment ago is claimed as it was: the claim is
                # refused if it moved on to Running or a final state with the claim's id. An
                # older read may be stale (suspended again, another attempt, cancelled from
                # Prefect's UI, taken to Pending by a Prefect worker): read again first.
                fresh = asyncio.get_running_loop().time() - read_at < 1.0
                await self._claim_and_execute(flow_run_id, flow_run if fresh else None, announced=announced and fresh)
            finally:
                self._slots.release()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("execution %s: %s", encoding.execution_id_for(flow_run_id), error)
        finally:
            if self._armed.get(flow_run_id) is asyncio.current_task():  # not a re-armed successor
                del self._armed[flow_run_id]

    # execution -----------------------------------------------------------------------
    async def _claim_and_execute(
        self, flow_run_id: UUID, flow_run: FlowRun | None = None, *, announced: bool = False
    ) -> None:
        self._claimed.add(flow_run_id)
        try:
            await self._claim_and_execute_claimed(flow_run_id, flow_run, announced)
        finally:
            self._claimed.discard(flow_run_id)

    async def _claim_and_execute_claimed(self, flow_run_id: UUID, flow_run: FlowRun | None, announced: bool) -> None:
        if flow_run is None and announced:
            claimed = await self._claim_then_read(flow_run_id)
        else:
            claimed = await self._read_then_claim(flow_run_id, flow_run)
        if claimed is None:
            return
        flow_run, definition = claimed
        problems = input_problems(definition, flow_run.parameters or {})
        if problems:
            listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
            invalid = {"step_name": None, "message": f"input_data is not valid: {listed}"}
            await transitions.finish(
                self.api, flow_run_id, encoding.execution_id_of(flow_run), Outcome(status="failed", error=invalid)
            )
            return
        await self._execute(flow_run, definition)

    async def _read_then_claim(
        self, flow_run_id: UUID, flow_run: FlowRun | None
    ) -> tuple[FlowRun, WorkflowDefinition] | None:
        """Claim a run read a moment ago (`flow_run`), or read now: it must still be
        Scheduled and due. None: not claimed (not due, moved on, another has it, refused)."""
        if flow_run is None:
            flow_run = await self.api.read_flow_run(flow_run_id)
            if flow_run is not None and flow_run.state_type == StateType.SCHEDULED:
                due = encoding.due_of(flow_run)
                if due > datetime.now(UTC) + timedelta(seconds=0.05):
                    self._arm_again(flow_run_id, due)  # it suspended again since it was armed
                    return None
        if flow_run is None or flow_run.state_type != StateType.SCHEDULED:
            return None
        reason = await self._refusal(flow_run)
        if reason is not None:
            await self._refuse(flow_run, reason)
            return None
        definition = self._definition_for(flow_run)
        if not await transitions.claim(self.api, flow_run_id, self.name):
            return None  # another worker has it, or it was cancelled
        return flow_run, definition

    async def _claim_then_read(self, flow_run_id: UUID) -> tuple[FlowRun, WorkflowDefinition] | None:
        """Claim a run a Scheduled event named a moment ago, then read it: read after the
        claim, the run is the one this worker holds (nobody can change its attempt or suspend
        it meanwhile), so no read before is needed. None: not claimed (not due, another has
        it, cancelled, refused)."""
        claim = await transitions.claim_if_due(self.api, flow_run_id, self.name, max_wait=CLAIM_WAIT_SECONDS)
        if claim.due_in is not None:  # not due yet (the scheduler made it ahead)
            self._arm_again(flow_run_id, datetime.now(UTC) + timedelta(seconds=claim.due_in))
            return None
        if not claim.granted:
            return None  # another worker has it, or it was cancelled
        flow_run = await self.api.read_flow_run(flow_run_id)
        if flow_run is None:
            return None  # deleted since
        if flow_run.state_type != StateType.RUNNING:
            # cancelled between the claim and the read (its Cancelling event found nothing
            # running here yet): nothing has run, so it ends Cancelled now
            if flow_run.state_type == StateType.CANCELLING:
                await transitions.cancel(self.api, flow_run_id)
            return None
        reason = await self._refusal(flow_run)
        if reason is not None:
            await self._refuse_claimed(flow_run_id, reason)
            return None
        return flow_run, self._definition_for(flow_run)

    def _arm_again(self, flow_run_id: UUID, due: datetime) -> None:
        """From inside its own timer: a run not due after all is armed for its due time."""
        self._armed.pop(flow_run_id, None)
        self.arm_if_soon(flow_run_id, due)

    async def _execute(self, flow_run: FlowRun, definition: WorkflowDefinition) -> None:
        cancel = asyncio.Event()
        task = asyncio.create_task(
            durable.execute_flow_run(
                self.api,
                flow_run,
                definition,
                http=self.engine.http,
                resolve_workflow=self.engine.resolve_for_step,
                cancel_requested=cancel,
                event_batches=self._event_batches,
            )
        )
        self._running[flow_run.id] = (task, cancel)
        try:
            disposition = await task
        except asyncio.CancelledError:
            if cancel.is_set():
                await transitions.cancel(self.api, flow_run.id)
            elif self._stop.is_set():
                await transitions.reschedule(self.api, flow_run.id, f"worker {self.name} shut down")
            raise
        finally:
            self._running.pop(flow_run.id, None)
        self.executed += 1
        if disposition.kind in ("suspended", "retrying") and disposition.resume_at is not None:
            self.arm_if_soon(flow_run.id, disposition.resume_at)

    def _definition_for(self, flow_run: FlowRun) -> WorkflowDefinition:
        workflow_id = encoding.workflow_of(flow_run)
        version = encoding.version_text_of(flow_run)
        if workflow_id is None or version is None or not version.isdigit():
            raise NotRunnable("the flow run has no workflow or version tag flowdeck can read")
        if not encoding.names_one_execution(flow_run):
            raise NotRunnable("the flow run has more than one workflow or version tag")
        # the definition the execution started with, whatever became of its file since
        stored = stored_definition(flow_run, workflow_id, int(version))
        return stored or self.engine.catalog.resolve(workflow_id, int(version), allow_draft=True)
