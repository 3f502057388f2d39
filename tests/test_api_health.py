"""/healthz's view of Prefect (flowdeck.api.health): a busy Prefect does not stall the
probe, a Prefect that is down is reported at once, a slow one is reported once its last
answer is too old to trust."""

from __future__ import annotations

import asyncio

from flowdeck.api.health import FRESH_S, TRUSTED_S, WAIT_S, PrefectHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Prefect:
    """Prefect's /health as the probe sees it: answers `healthy` after `delay` seconds."""

    def __init__(self) -> None:
        self.healthy = True
        self.delay = 0.0
        self.asked = 0

    async def health(self) -> bool:
        self.asked += 1
        await asyncio.sleep(self.delay)
        return self.healthy


def test_a_fresh_answer_is_reused_and_an_old_one_asks_again() -> None:
    async def go() -> None:
        clock, prefect = Clock(), Prefect()
        health = PrefectHealth(prefect.health, clock=clock)
        assert (await health.observe()).healthy
        clock.now += FRESH_S / 2
        assert (await health.observe()).healthy and prefect.asked == 1
        clock.now += FRESH_S
        assert (await health.observe()).healthy and prefect.asked == 2

    asyncio.run(go())


def test_a_busy_prefect_does_not_hold_the_probe() -> None:
    async def go() -> None:
        clock, prefect = Clock(), Prefect()
        health = PrefectHealth(prefect.health, clock=clock)
        await health.observe()
        prefect.delay = 1.0
        clock.now += 1.0
        started = asyncio.get_running_loop().time()
        observed = await health.observe()
        took = asyncio.get_running_loop().time() - started
        assert observed.healthy and observed.age_s == 1.0
        assert took < WAIT_S + 0.2, took
        # The slow answer still lands and serves the next probe; one question at a time.
        clock.now += FRESH_S
        await health.observe()
        assert prefect.asked == 2
        await asyncio.sleep(1.1)
        assert (await health.observe()).age_s < FRESH_S

    asyncio.run(go())


def test_prefect_down_is_reported_on_the_next_probe() -> None:
    async def go() -> None:
        clock, prefect = Clock(), Prefect()
        health = PrefectHealth(prefect.health, clock=clock)
        await health.observe()
        prefect.healthy = False  # a refused connection answers at once
        clock.now += FRESH_S
        assert not (await health.observe()).healthy

    asyncio.run(go())


def test_a_slow_answer_is_not_trusted_past_its_age() -> None:
    async def go() -> None:
        clock, prefect = Clock(), Prefect()
        health = PrefectHealth(prefect.health, clock=clock)
        await health.observe()
        prefect.delay, prefect.healthy = 0.3, False
        clock.now += TRUSTED_S + 1
        started = asyncio.get_running_loop().time()
        observed = await health.observe()
        assert not observed.healthy  # waited for the answer itself: the old one is too old
        assert asyncio.get_running_loop().time() - started >= 0.3

    asyncio.run(go())


def test_a_probe_that_raises_is_an_unhealthy_answer() -> None:
    async def broken() -> bool:
        raise RuntimeError("no route")

    async def go() -> None:
        assert not (await PrefectHealth(broken).observe()).healthy

    asyncio.run(go())
