"""The worker's liveness half: it heartbeats as a worker of the `flowdeck` work pool and
takes over the runs whose executor is gone (a worker whose heartbeat stopped, a sync caller
that died), rescheduling them so they resume from their journal."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.client.schemas.objects import FlowRun, StateType

from flowdeck import settings
from flowdeck.errors import FlowdeckError
from flowdeck.execution.worker.scheduling import Scheduling
from flowdeck.runtime.interpreter import Outcome
from flowdeck.store import encoding, read_model, transitions
from flowdeck.store.deployments import WORK_POOL

# Takeovers of one execution from workers that died while running it, before it fails.
MAX_WORKER_LOSSES = 3


class Liveness(Scheduling):
    async def _heartbeat_once(self) -> None:
        await self.api.heartbeat_worker(WORK_POOL, self.name, int(max(1, self.settings.heartbeat_interval)))

    async def _live_workers(self, now: datetime) -> set[str]:
        return {
            w["name"]
            for w in await self.api.read_workers(WORK_POOL)
            if w.get("last_heartbeat_time")
            and (now - datetime.fromisoformat(w["last_heartbeat_time"])).total_seconds() < self.settings.dead_after
        }

    async def _runs_in_flight(self) -> list[FlowRun]:
        runs: list[FlowRun] = []
        while True:  # every page: with many workers, more than one page of runs is in flight
            page = await self.api.read_flow_runs(
                {
                    "flow_runs": {
                        "tags": {"all_": [encoding.FLOWDECK_TAG], "any_": self._workflow_tags()},
                        "state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}},
                    },
                    "sort": "ID_DESC",
                    "limit": 200,
                    "offset": len(runs),
                }
            )
            runs += page
            if len(page) < 200:
                return runs

    async def _recover_once(self) -> None:
        """Reschedule runs whose executor is gone: a silent worker or a dead sync caller."""
        now = datetime.now(UTC)
        alive = await self._live_workers(now)
        self._peers = sorted(alive)
        for flow_run in await self._runs_in_flight():
            if flow_run.id in self._claimed:
                continue
            owner = encoding.owner_of(flow_run)
            since = flow_run.state.timestamp if flow_run.state else now
            if owner is None:  # a sync caller: presumed dead well past its limit
                limit = self._sync_limit(flow_run)
                if (
                    flow_run.start_time
                    and (now - flow_run.start_time).total_seconds() < limit + self.settings.sync_grace
                ):
                    continue
            elif owner == self.name:
                pass  # ours, yet no longer running here: its end could not be recorded (Prefect was down)
            elif owner in alive or (now - since).total_seconds() < self.settings.dead_after:
                continue
            if flow_run.state_type == StateType.CANCELLING:
                await transitions.cancel(self.api, flow_run.id)
                continue
            # Re-read just before the forced reschedule: a run that moved on meanwhile (ended,
            # or claimed again here) must not be sent back.
            current = await self.api.read_flow_run(flow_run.id)
            if (
                current is None
                or flow_run.id in self._claimed
                or current.state is None
                or flow_run.state is None
                or current.state.timestamp != flow_run.state.timestamp
            ):
                continue
            who = (
                "this worker (its end was not recorded)"
                if owner == self.name
                else f"worker {owner}"
                if owner
                else "the sync caller"
            )
            if owner is not None and owner != self.name:
                # a step that kills or crashes its worker would otherwise be retried forever
                takeovers = encoding.takeovers_of(current) + 1
                if takeovers > MAX_WORKER_LOSSES:
                    await self._fail_lost(current, takeovers - 1)
                    continue
                await transitions.take_over(self.api, flow_run.id, takeovers, f"recovered: {who} stopped responding")
            else:
                await transitions.reschedule(self.api, flow_run.id, f"recovered: {who} stopped responding")
            self.arm(flow_run.id, datetime.now(UTC))

    async def _fail_lost(self, flow_run: FlowRun, losses: int) -> None:
        step = await read_model.current_step(self.api, flow_run)
        # (the step is known when it ran long enough to be recorded as running)
        where = f" (at step '{step}')" if step else ""
        message = (
            f"the execution lost its worker {losses + 1} times{where}: a step that kills or "
            f"crashes its worker is not retried more than {MAX_WORKER_LOSSES} times; fix the step "
            "(memory, a native crash, an exit call) and start the execution again"
        )
        outcome = Outcome(status="failed", error={"step_name": step, "message": message})
        await transitions.finish(self.api, flow_run.id, encoding.execution_id_of(flow_run), outcome)

    def _sync_limit(self, flow_run: FlowRun) -> float:
        try:
            definition = self._definition_for(flow_run)
        except FlowdeckError:
            return settings.sync_timeout_default()
        return definition.sync_timeout or settings.sync_timeout_default()
