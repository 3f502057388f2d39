"""A worker's claim (Scheduled -> Running in one write) against a real Prefect server:
claimants racing for one run never both get it, whatever they read before.

The claim relies on Prefect's PreventDuplicateTransitions and a transition id shared by
every claim of a run (flowdeck.store.encoding.claim_state): without it, Prefect accepts
Running -> Running and these tests fail.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from flowdeck.store import encoding, transitions
from flowdeck.store.prefect_api import PrefectAPI

CLAIMANTS = 4
RUNS = 12


async def _scheduled_run(api: PrefectAPI) -> Any:
    flow_id = await api.flow_id("claim-race")
    response = await api.request(
        "POST", "/flow_runs/", json={"flow_id": str(flow_id), "state": {"type": "SCHEDULED", "name": "Scheduled"}}
    )
    return response.json()["id"]


async def _race(api: PrefectAPI, flow_run_id: Any) -> list[bool]:
    return list(await asyncio.gather(*(transitions.claim(api, flow_run_id, f"w{i}") for i in range(CLAIMANTS))))


def test_claimants_racing_for_a_run_are_granted_it_once(prefect_api: str) -> None:
    async def scenario() -> None:
        async with PrefectAPI() as api:
            run_ids = [await _scheduled_run(api) for _ in range(RUNS)]
            outcomes = await asyncio.gather(*(_race(api, run_id) for run_id in run_ids))
            assert [sum(o) for o in outcomes] == [1] * RUNS, outcomes
            for run_id in run_ids:
                run = await api.read_flow_run(run_id)
                assert run is not None and run.state_type is not None
                assert run.state_type.value == "RUNNING"
                assert encoding.owner_of(run) in {f"w{i}" for i in range(CLAIMANTS)}

    asyncio.run(scenario())


def test_a_stale_claim_after_the_run_moved_on_is_refused(prefect_api: str) -> None:
    """A claimant that read the run Scheduled before another claimed it, or before it
    suspended and was claimed again, is refused; after a suspension, one claimant again."""

    async def scenario() -> None:
        async with PrefectAPI() as api:
            run_id = await _scheduled_run(api)
            assert await transitions.claim(api, run_id, "first") is True
            assert await transitions.claim(api, run_id, "late") is False  # read it Scheduled, too late
            # it suspends at a Wait already due, and is claimed again by exactly one
            due = datetime.now(UTC) - timedelta(seconds=1)
            await transitions.suspend(api, run_id, "pause", due)
            assert sum(await _race(api, run_id)) == 1
            assert await transitions.claim(api, run_id, "stale") is False
            run = await api.read_flow_run(run_id)
            assert run is not None and run.state_type is not None and run.state_type.value == "RUNNING"

    asyncio.run(scenario())


def test_a_cancelled_or_finished_run_cannot_be_claimed(prefect_api: str) -> None:
    async def scenario() -> None:
        async with PrefectAPI() as api:
            cancelled = await _scheduled_run(api)
            await transitions.cancel(api, cancelled)
            assert await transitions.claim(api, cancelled, "w") is False
            finished = await _scheduled_run(api)
            assert await transitions.claim(api, finished, "w") is True
            await transitions.refuse(api, finished, "w", "test")
            assert await transitions.claim(api, finished, "w2") is False
            requested = await _scheduled_run(api)
            await transitions.request_cancel(api, requested)  # Scheduled: Prefect cancels it at once
            assert await transitions.claim(api, requested, "w") is False

    asyncio.run(scenario())


def test_a_claim_of_a_run_not_yet_due_says_how_long_and_writes_nothing(prefect_api: str) -> None:
    """The worker claims a run announced by an event before it reads it: a run the
    scheduler made ahead of its time must come back as "due in", not be taken early, and a
    run due within `max_wait` is waited for and granted."""

    async def scenario() -> None:
        async with PrefectAPI() as api:
            flow_id = await api.flow_id("claim-race")

            async def scheduled_in(seconds: float) -> Any:
                at = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
                state = {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": at}}
                response = await api.request("POST", "/flow_runs/", json={"flow_id": str(flow_id), "state": state})
                return response.json()["id"]

            later, soon = await scheduled_in(30), await scheduled_in(0.3)
            claim = await transitions.claim_if_due(api, later, "w", max_wait=0.5)
            assert not claim.granted and claim.due_in is not None and 25 < claim.due_in <= 30, claim
            run = await api.read_flow_run(later)
            assert run is not None and run.state_type is not None and run.state_type.value == "SCHEDULED"
            claim = await transitions.claim_if_due(api, soon, "w", max_wait=0.5)
            assert claim.granted and claim.due_in is None, claim

    asyncio.run(scenario())
