"""Every state transition of an execution, through one choke point (`set_state`), as
Prefect's own flow engine does with its `set_state`.

    claim       Scheduled -> Running `worker <worker>`     (granted to one claimant, one write)
    suspend     -> Scheduled `Waiting` at the due time        (a Wait; nothing is held)
    HandedOff   -> Scheduled `HandedOff` now                  (a sync call's limit; the drain writes it)
    retry       -> Scheduled `AwaitingRetry`, attempt label + 1
    reschedule  -> Scheduled now                              (recovery, shutdown)
    finish      -> Completed / Failed, the outcome as its result record
    refuse      -> Failed `Refused` (a run the worker may not run)
    request_cancel  Running -> Cancelling                     (its worker stops it)
    cancel      -> Cancelled

States' names and messages are built in `flowdeck.store.encoding`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import State
from prefect.client.schemas.responses import OrchestrationResult, StateWaitDetails

from flowdeck.runtime.interpreter import Outcome
from flowdeck.store import encoding, journal
from flowdeck.store.prefect_api import PrefectAPI


async def set_state(
    api: PrefectAPI, flow_run_id: UUID, state: State[Any], *, force: bool = False
) -> OrchestrationResult[Any]:
    """The one place a flowdeck execution's state is written. Final and Cancelling states
    carry the claim's transition id (`claim`): Prefect lets a flow run leave a final state
    for Running, so a claimant that read the run Scheduled a moment before it ended is
    refused by the same rule that refuses a second claimant."""
    if state.is_final() or state.is_cancelling():
        state.state_details.transition_id = encoding.claim_transition_id(flow_run_id)
    return await api.set_flow_run_state(flow_run_id, state, force=force)


def _accepted(result: OrchestrationResult[Any]) -> bool:
    return bool(result.status.value == "ACCEPT")


async def claim(api: PrefectAPI, flow_run_id: UUID, worker: str) -> bool:
    """Propose Running straight from Scheduled, granted to exactly one claimant in one write.

    Prefect's core flow policy has no rule against Running -> Running (PreventPendingTransitions
    guards only proposals of Pending, which is why workers claim Pending first), so every
    claim of a run carries the same `transition_id` (`encoding.claim_state`): a proposal
    while the run is Running from a claim is then rejected by PreventDuplicateTransitions.
    The server decides on the run's current state inside one transaction (SQLite: writes
    one at a time; PostgreSQL: the row is read FOR UPDATE), so two claimants racing for
    one Scheduled state cannot both be accepted: the second finds Running with that id."""
    return (await claim_if_due(api, flow_run_id, worker, max_wait=float("inf"))).granted


@dataclass(frozen=True)
class Claim:
    granted: bool
    due_in: float | None = None  # not granted because the run is not due for this long


async def claim_if_due(api: PrefectAPI, flow_run_id: UUID, worker: str, *, max_wait: float) -> Claim:
    """`claim`, for a run whose due time the claimant does not know: Prefect answers WAIT
    (with the delay) for a run not due yet; a delay up to `max_wait` is waited out here, a
    longer one is handed back (`due_in`) so that the caller can come back then."""
    result = await set_state(api, flow_run_id, encoding.claim_state(flow_run_id, worker))
    if result.status.value == "WAIT":  # early: the server says how long
        details = result.details
        delay = (details.delay_seconds if isinstance(details, StateWaitDetails) else 0.1) or 0.1
        if delay > max_wait:
            return Claim(granted=False, due_in=delay)
        await asyncio.sleep(delay)
        result = await set_state(api, flow_run_id, encoding.claim_state(flow_run_id, worker))
    return Claim(granted=_accepted(result))  # refused: another worker has it, or it was cancelled


async def suspend(
    api: PrefectAPI, flow_run_id: UUID, step_name: str, until: datetime, wake_at: datetime | None = None
) -> None:
    await set_state(api, flow_run_id, encoding.waiting_state(step_name, until, wake_at), force=True)


async def retry(api: PrefectAPI, flow_run_id: UUID, attempt: int, retry_at: datetime, error: dict[str, Any]) -> None:
    """Attempt `attempt` failed: the next one runs at `retry_at`."""
    await api.update_flow_run_labels(flow_run_id, encoding.attempt_labels(attempt + 1))
    await set_state(api, flow_run_id, encoding.retry_state(attempt, retry_at, error), force=True)


async def reschedule(api: PrefectAPI, flow_run_id: UUID, reason: str) -> None:
    await set_state(api, flow_run_id, encoding.rescheduled_state(reason), force=True)


async def take_over(api: PrefectAPI, flow_run_id: UUID, takeovers: int, reason: str) -> None:
    """Reschedule a run whose executor died, counting the takeover in its labels."""
    await api.update_flow_run_labels(flow_run_id, {encoding.TAKEOVERS_LABEL: takeovers})
    await reschedule(api, flow_run_id, reason)


async def finish(
    api: PrefectAPI, flow_run_id: UUID, execution_id: str, outcome: Outcome, *, set_final_state: bool = True
) -> None:
    """The final state, with the documented body persisted as its result."""
    record = await journal.write_outcome(execution_id, outcome.record())
    if not set_final_state:  # Prefect's engine hosts the run and sets the final state itself
        return
    await set_state(api, flow_run_id, encoding.final_state(outcome.status, outcome.error, record), force=True)


async def refuse(api: PrefectAPI, flow_run_id: UUID, worker: str, reason: str) -> None:
    """A claimed run the worker may not run: Failed `Refused`, the reason its message."""
    await set_state(api, flow_run_id, encoding.refused_state(worker, reason), force=True)


async def request_cancel(api: PrefectAPI, flow_run_id: UUID) -> None:
    result = await set_state(api, flow_run_id, encoding.cancelling_state(), force=True)
    if result.state is not None and result.state.type.value == "CANCELLED":
        # a run nobody held: Prefect cancelled it at once, in a state without the claim's
        # transition id; written again with it, so that a claim read before cannot take it
        await cancel(api, flow_run_id)


async def cancel(api: PrefectAPI, flow_run_id: UUID) -> None:
    await set_state(api, flow_run_id, encoding.cancelled_state(), force=True)
