"""Snapshots of each screen from fixed data (tui.fixed.FixedClient): no clocks, durations or
host names; animations and cursor blink off. Update with `--snapshot-update`."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ["TEXTUAL_ANIMATIONS"] = "none"


def fixed_app() -> Any:
    from flowdeck.tui.app import build_app

    return build_app(show_clocks=False, poll_interval=3600)


async def settle(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=settle)


async def open_form(pilot: Any) -> None:
    await settle(pilot)
    app = pilot.app
    version = [v for v in app.client.workflows() if v.workflow_id == "score_lead"][-1]
    app.launch(version)
    await pilot.pause()
    for widget in app.screen.query("Input"):
        widget.cursor_blink = False


def test_launch_form(snap_compare: Any) -> None:
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=open_form)


def test_launch_form_problems(snap_compare: Any) -> None:
    async def submit_empty(pilot: Any) -> None:
        await open_form(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(100, 30), run_before=submit_empty)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_detail_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    async def open_detail(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.open_execution("exec_0002" + "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"[:28])
        await pilot.pause(0.3)
        await pilot.app.screen.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=open_detail)


def test_broken_definition_selected(snap_compare: Any) -> None:
    async def to_problem(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(120, 34), run_before=to_problem)
