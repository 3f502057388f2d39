"""What `/healthz` says about Prefect, without waiting on a busy Prefect.

A Prefect server that is up but busy (the drain writing behind a burst of executions, on
the same 2 cores) takes up to a second to answer its own `/health`; a liveness probe that
waits for it reports the API as stalled when it is not. So Prefect's health is probed at
most every `FRESH_S`, and an answer still on the way is waited for only `WAIT_S` while an
earlier one younger than `TRUSTED_S` is on hand. A Prefect that is down refuses the
connection at once, so the 503 still comes within one `FRESH_S`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

FRESH_S = 0.5  # an answer younger than this is reused without asking again
WAIT_S = 0.05  # how long a probe waits for Prefect while a trusted answer is on hand
TRUSTED_S = 5.0  # how long a healthy answer may stand in for one still on the way


@dataclass(frozen=True)
class Observed:
    healthy: bool
    age_s: float  # how long ago Prefect gave this answer


class PrefectHealth:
    """The last answer of `probe` (Prefect's `/health`), refreshed in the background."""

    def __init__(self, probe: Callable[[], Awaitable[bool]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self._clock = clock
        self._healthy = False
        self._answered_at: float | None = None
        self._asking: asyncio.Task[None] | None = None

    async def observe(self) -> Observed:
        now = self._clock()
        if self._answered_at is not None and now - self._answered_at < FRESH_S:
            return self._observed()
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask())
        trusted = self._healthy and self._answered_at is not None and now - self._answered_at < TRUSTED_S
        # asyncio.wait leaves a probe that outlasts it running: it answers the next request.
        await asyncio.wait({self._asking}, timeout=WAIT_S if trusted else None)
        return self._observed()

    async def _ask(self) -> None:
        try:
            healthy = await self._probe()
        except Exception:  # a probe that fails in any way is an unhealthy answer, never a 500
            healthy = False
        self._healthy, self._answered_at = healthy, self._clock()

    def _observed(self) -> Observed:
        if self._answered_at is None:  # the first probe is still on the way
            return Observed(False, 0.0)
        return Observed(self._healthy, max(0.0, self._clock() - self._answered_at))

    async def aclose(self) -> None:
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()


__all__ = ["FRESH_S", "TRUSTED_S", "WAIT_S", "Observed", "PrefectHealth"]
