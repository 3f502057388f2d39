"""Task-run events of a worker's executions, sent to Prefect many at a time.

Prefect's own client sends each event as one websocket message, and the server then pays
a request's worth of work for each (parsing, publishing to its services, a transaction in
the task-run recorder). A worker runs hundreds of executions of a few milliseconds each;
it gathers their events for up to `WINDOW_SECONDS` (or `MAX_EVENTS`) and sends them in one
`POST /events`, which costs the server about a third of that per event
(docs/benchmarks.md, session 6).

An execution waits for its own events to have been sent before its state moves on
(`flush`), so Prefect never holds a Completed run without its steps' events. A send that
fails keeps the events (up to `MAX_PENDING`) for the next one; Prefect ignores an event id
it has already recorded, so a send repeated after a timeout writes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from flowdeck.store.prefect_api import PrefectAPI

WINDOW_SECONDS = 0.05
MAX_EVENTS = 200  # per request
MAX_PENDING = 20_000  # events kept through an outage; older ones are dropped, and logged
RETRY_SECONDS = 1.0

_log = logging.getLogger("flowdeck.events")


class EventBatches:
    def __init__(self, api: PrefectAPI, window: float = WINDOW_SECONDS) -> None:
        self.api = api
        self.window = window
        self.dropped = 0
        self._pending: list[dict[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Events queued and not yet sent."""
        return len(self._pending)

    def add(self, event: dict[str, Any]) -> None:
        """Queue one event (a dict as `flowdeck.store.events` builds it); sent within the window."""
        self._pending.append(event)
        if len(self._pending) > MAX_PENDING:
            excess = len(self._pending) - MAX_PENDING
            del self._pending[:excess]
            self.dropped += excess
            _log.warning("dropped %d task-run events Prefect could not take (%d in all)", excess, self.dropped)
        if len(self._pending) >= MAX_EVENTS:
            self._start_sending()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self._start_sending)

    async def close(self) -> None:
        """At shutdown: send what is queued, and say how many could not be sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
        if self._timer is not None:  # a failed last send set one: nobody is left to send
            self._timer.cancel()
            self._timer = None
        if self._pending:
            _log.warning("%d task-run events not sent: Prefect could not be reached at shutdown", len(self._pending))

    async def flush(self) -> None:
        """Return once every event queued so far has been sent, or a send has failed (the
        events stay queued; the caller's own next request to Prefect will fail the same way)."""
        while self._pending or (self._sending is not None and not self._sending.done()):
            self._start_sending()
            assert self._sending is not None
            sending = self._sending
            await asyncio.wait([sending])  # not the send itself: a cancelled waiter must not cancel it
            if sending.cancelled() or sending.exception() is not None:
                return

    def _start_sending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_pending())
            self._sending.add_done_callback(_consume_exception)

    async def _send_pending(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_EVENTS]
            del self._pending[: len(batch)]
            try:
                await self.api.create_events(batch)
            except Exception as error:  # Prefect down, or the connection broke mid-request
                self._pending[:0] = batch
                _log.warning(
                    "could not send %d task-run events (kept, sent again in %g s): %s", len(batch), RETRY_SECONDS, error
                )
                if self._timer is None:  # an idle worker sends them again by itself
                    self._timer = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._start_sending)
                raise


def _consume_exception(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # logged in _send_pending; read here so asyncio does not warn
