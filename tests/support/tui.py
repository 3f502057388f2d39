"""Helpers of the dashboard's tests: waiting for a condition under Pilot, what a widget shows,
the fixed-data App with a launch memory of its own."""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# fixed executions (tui/fixed.py)
ASYNC = "exec_0001a1b2c3d4e5f6a7b8c9d0e1f2a3b4"  # waiting, retried fetch_company, a wait
SYNC = "exec_0003a1b2c3d4e5f6a7b8c9d0e1f2a3b4"  # failed at score
SUCCESS = "exec_0002a1b2c3d4e5f6a7b8c9d0e1f2a3b4"


async def until(predicate: Callable[[], bool], pilot: Any, timeout: float = 10.0) -> float:
    """Seconds until predicate() holds (fails the test after timeout). A widget not there
    yet counts as "not yet": a screen just pushed may not have composed its children."""
    from textual.css.query import NoMatches

    def holds() -> bool:
        try:
            return predicate()
        except NoMatches:
            return False

    started = time.perf_counter()
    while not holds():
        if time.perf_counter() - started > timeout:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)
    return time.perf_counter() - started


def text_of(widget: Any) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content if hasattr(widget, "content") else widget)
    return console.export_text()


def fixed_app(client: Any = None, memory_dir: Path | None = None, **options: Any) -> Any:
    """The dashboard on fixed data, no clocks, polling once; launch inputs remembered in a
    directory of its own (never the suite's FLOWDECK_HOME, shared by every test)."""
    from flowdeck.tui.app import build_app
    from flowdeck.tui.fixed import FixedClient
    from flowdeck.tui.memory import LaunchMemory

    memory = LaunchMemory((memory_dir or Path(tempfile.mkdtemp(prefix="dash-memory-"))) / "last_inputs.json")
    options.setdefault("show_clocks", False)
    options.setdefault("poll_interval", 3600)
    return build_app(client or FixedClient(), memory=memory, **options)


async def settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    if pilot.app.screen is not pilot.app.main:
        await pilot.app.screen.workers.wait_for_complete()
        await pilot.pause()


def drive(body: Callable[[Any, Any], Awaitable[None]], size: tuple[int, int] = (120, 40), **options: Any) -> Any:
    app = fixed_app(**options)

    async def go() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await body(app, pilot)

    asyncio.run(go())
    return app


def footer_keys(app: Any) -> list[str]:
    return [b.binding.description for b in app.active_bindings.values() if b.binding.show]


async def open_detail(app: Any, pilot: Any, execution_id: str) -> Any:
    """The detail screen of `execution_id`, loaded."""
    from flowdeck.tui.detail import DetailScreen

    app.open_execution(execution_id)
    await until(lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, pilot)
    await settle(pilot)
    return app.screen
