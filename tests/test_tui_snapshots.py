"""Snapshots of each screen from fixed data (tui.fixed.FixedClient) at 80x24 and 120x40: no
clocks, durations or host names; animations and cursor blink off. Update with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs before committing."""

from __future__ import annotations

import os
from typing import Any

import pytest
from support.tui import fixed_app, settle

os.environ["TEXTUAL_ANIMATIONS"] = "none"

SIZES = [(80, 24), (120, 40)]
ASYNC = "exec_0001a1b2c3d4e5f6a7b8c9d0e1f2a3b4"  # waiting; fetch_company retried; a wait
SYNC = "exec_0003a1b2c3d4e5f6a7b8c9d0e1f2a3b4"  # failed at score


def no_blink(pilot: Any) -> None:
    for widget in pilot.app.screen.query("Input"):
        widget.cursor_blink = False


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("execution_id", [SYNC, ASYNC], ids=["sync", "async"])
def test_detail_screen(snap_compare: Any, size: tuple[int, int], execution_id: str) -> None:
    async def open_detail(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.open_execution(execution_id)
        await pilot.pause(0.3)
        await settle(pilot)
        no_blink(pilot)
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
def test_help_overlay(snap_compare: Any, size: tuple[int, int]) -> None:
    async def press_help(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=press_help)


async def open_workflow(pilot: Any, *keys: str) -> None:
    await settle(pilot)
    pilot.app.open_workflow("score_lead")
    await pilot.pause(0.2)
    await pilot.press(*keys)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_structure_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=open_workflow)


@pytest.mark.parametrize("size", SIZES)
def test_diff_between_versions(snap_compare: Any, size: tuple[int, int]) -> None:
    async def diff(pilot: Any) -> None:
        await open_workflow(pilot, "d")

    assert snap_compare(fixed_app(), terminal_size=size, run_before=diff)


@pytest.mark.parametrize("size", SIZES)
def test_launch_form_with_errors(snap_compare: Any, size: tuple[int, int]) -> None:
    async def submit_bad(pilot: Any) -> None:
        await settle(pilot)
        app = pilot.app
        version = [v for v in app.client.workflows() if v.workflow_id == "score_lead"][-1]
        app.launch(version)
        await pilot.pause()
        no_blink(pilot)
        await pilot.press(*"12x")
        app.screen.query_one("#field-email").value = "not-an-email"
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=size, run_before=submit_bad)


def test_broken_definition_selected(snap_compare: Any) -> None:
    async def to_problem(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("E")
        await pilot.pause()

    assert snap_compare(fixed_app(), terminal_size=(120, 34), run_before=to_problem)
