"""Pilot tests of the dashboard's behaviours on fixed data (tui.fixed.FixedClient: no Prefect):
help, footers, palette, vim keys, the table (search, counters, follow, marks, bulk actions,
stale rows), the detail screen's story, the launch form, the structure view and diff, and
opening straight on an execution or a workflow. Against the real engine: tests/test_tui.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.tui import ASYNC, drive, fixed_app, footer_keys, open_detail, text_of, until

os.environ["TEXTUAL_ANIMATIONS"] = "none"


# keys you can find -------------------------------------------------------------------------
def test_help_opens_with_question_mark_and_f1_and_closes_with_esc_or_question_mark() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.help import HelpScreen

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = {key: what for _, keys in app.screen.groups for key, what in keys}
        assert shown["c"] == "Cancel" and shown["space"] == "Mark" and shown["/"] == "Search"
        assert shown["j"] == "Down" and shown["G"] == "Last row" and shown["f5"] == "Reload definitions"
        assert [title for title, _ in app.screen.groups][:1] == ["executions"]
        await pilot.press("question_mark")
        assert app.screen is app.main
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.main

    drive(body)


def test_help_and_footer_belong_to_the_screen_on_top() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.help import HelpScreen

        assert {"Launch", "Re-run", "Cancel", "Search", "Quit"} <= set(footer_keys(app))
        await open_detail(app, pilot, ASYNC)
        keys = footer_keys(app)
        assert "Back" in keys and "Launch" not in keys and "Search" not in keys
        await pilot.press("s")  # the main screen's status filter: not on this screen
        assert app.table.filter.status is None
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = {what for _, keys in app.screen.groups for _, what in keys}
        assert {"Back", "Logs", "Follow logs", "Log level", "Edit+re-run"} <= shown
        assert "Status filter" not in shown and "Launch" not in shown

    drive(body)


def test_every_key_action_is_in_the_command_palette() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.commands import FlowdeckCommands

        provider = FlowdeckCommands(app.screen)
        names = {text for text, _, _ in provider._commands()}
        assert {"Cancel", "Re-run", "Copy id", "Reload definitions", "Prefect UI", "Help", "Mark"} <= names
        assert {"Structure", "Clear filters", "Quit", "Edit+re-run"} <= names
        await open_detail(app, pilot, ASYNC)
        names = {text for text, _, _ in FlowdeckCommands(app.screen)._commands()}
        assert {"Back", "Cancel run", "Follow logs", "Filter logs", "Log level"} <= names

    drive(body)


def test_palette_runs_a_key_action() -> None:
    async def body(app: Any, pilot: Any) -> None:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"clear filters")
        await pilot.pause(0.3)
        app.filter_status("failed")
        await pilot.pause()
        assert app.table.filter.status == "failed"
        await pilot.press("enter")
        await until(lambda: app.table.filter.status is None, pilot)

    drive(body)


def test_vim_keys_move_in_the_table() -> None:
    async def body(app: Any, pilot: Any) -> None:
        assert app.table.cursor_row == 0
        await pilot.press("j", "j")
        assert app.table.cursor_row == 2
        await pilot.press("k")
        assert app.table.cursor_row == 1
        await pilot.press("G")
        assert app.table.cursor_row == app.table.row_count - 1
        await pilot.press("g")
        assert app.table.cursor_row == 0

    drive(body)


# the executions table ---------------------------------------------------------------------
def test_search_matches_workflow_status_and_step_and_says_when_nothing_does() -> None:
    async def body(app: Any, pilot: Any) -> None:
        await pilot.press("slash", *"hello waiting")
        await until(lambda: app.table.row_count == 2, pilot)
        assert {app.table.known[i].status for i in app.table.rows} == {"waiting"}
        app.query_one("#filter-search").value = "hello score"  # a workflow and a current step
        await until(lambda: app.table.row_count == 2, pilot)
        assert {app.table.known[i].current_step for i in app.table.rows} == {"score"}
        app.query_one("#filter-search").value = "nothing-like-this"
        await until(lambda: app.table.row_count == 0, pilot)
        message = app.query_one("#empty-message")
        assert message.display and "no execution matches" in text_of(message)

    drive(body)


def test_header_counts_running_waiting_failed_and_draws_finished_per_minute() -> None:
    from datetime import UTC, datetime, timedelta

    from flowdeck.tui.executions import finished_per_minute, sparkline

    async def body(app: Any, pilot: Any) -> None:
        header = text_of(app.query_one("#status-line"))
        assert "running 2" in header and "waiting 2" in header and "failed 1h 2" in header
        assert "done/min" in header and "12 shown/12" in header

    drive(body)
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    app = fixed_app()
    rows = list(app.client._rows.values())
    for minute, row in zip((0, 0, 0, 2, 30), rows, strict=False):
        row.ended_at = now - timedelta(minutes=minute, seconds=10)
    counts = finished_per_minute(rows[:5], now, minutes=5)
    assert counts == [0, 0, 1, 0, 3]
    assert sparkline(counts) == "▁▁▃▁█" and sparkline([0, 0]) == "▁▁"


def test_follow_newest_until_the_user_moves_down() -> None:
    from dataclasses import replace

    async def body(app: Any, pilot: Any) -> None:
        first = app.table.selected_id
        newer = replace(app.table.known[first], execution_id="exec_ffff" + "0" * 28)
        newer.created_at = newer.created_at.replace(year=2030)
        app.table.merge([newer], complete=False)
        await pilot.pause()
        assert app.table.selected_id == newer.execution_id and app.table.follow
        await pilot.press("j", "j")
        assert not app.table.follow
        kept = app.table.selected_id
        newest = replace(newer, execution_id="exec_fffe" + "0" * 28)
        newest.created_at = newest.created_at.replace(year=2031)
        app.table.merge([newest], complete=False)
        await pilot.pause()
        assert app.table.selected_id == kept
        assert "follow off" in app.table.border_subtitle
        await pilot.press("F")
        assert app.table.follow and app.table.selected_id == newest.execution_id

    drive(body)


def test_marked_rows_are_cancelled_together_after_a_confirmation() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.dialogs import ConfirmScreen

        first = app.table.selected_id
        await pilot.press("space", "space")  # marks a row and moves on: two rows marked
        assert len(app.table.marked) == 2 and first in app.table.marked
        assert "2 marked" in app.table.border_subtitle
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen) and "2 executions" in app.screen.question
        await pilot.press("n")  # no: nothing cancelled, marks kept
        await pilot.pause()
        assert app.client.cancelled == [] and len(app.table.marked) == 2
        await pilot.press("c", "y")
        await until(lambda: len(app.client.cancelled) == 2, pilot)
        assert first in app.client.cancelled and app.table.marked == set()

    drive(body)


def test_a_single_cancel_asks_too_and_enter_on_the_dialog_says_no() -> None:
    async def body(app: Any, pilot: Any) -> None:
        await pilot.press("c", "enter")  # the focus starts on "No"
        await pilot.pause()
        assert app.client.cancelled == []

    drive(body)


def test_bulk_rerun_with_the_same_inputs() -> None:
    async def body(app: Any, pilot: Any) -> None:
        await pilot.press("j", "j", "space", "space")  # success (async) and failed (sync)
        await pilot.press("r", "y")
        await until(lambda: len(app.client.launched) == 2, pilot)
        assert sorted(mode for _, _, mode, _ in app.client.launched) == ["async", "sync"]
        assert all(data["company_size"] == 120 for _, _, _, data in app.client.launched)

    drive(body)


def test_stale_rows_are_marked_while_prefect_cannot_be_reached() -> None:
    from flowdeck.tui.fixed import FixedClient

    client = FixedClient()

    async def body(app: Any, pilot: Any) -> None:
        assert "● connected" in text_of(app.query_one("#status-line"))
        client.down = True
        app.nudge()
        await until(lambda: app.table.has_class("-stale"), pilot)
        header = text_of(app.query_one("#status-line"))
        assert "reconnecting since" in header and "last refresh" in header
        assert "STALE since" in app.table.border_subtitle
        assert app.table.row_count == 12  # the last rows stay, marked
        client.down = False
        app.nudge()
        await until(lambda: not app.table.has_class("-stale"), pilot)
        assert "● connected" in text_of(app.query_one("#status-line"))

    drive(body, client=client, poll_interval=0.05)


def test_header_shows_the_outbox_backlog_and_why_the_drain_is_stuck() -> None:
    from flowdeck.tui.fixed import FixedClient

    client = FixedClient()

    async def body(app: Any, pilot: Any) -> None:
        assert "outbox ✓" in text_of(app.query_one("#status-line"))  # nothing waits for Prefect
        client.backlog_state = {
            "executions": 3,
            "oldest_age_s": 12.4,
            "limit": 10000,
            "drain_last_error": "cannot reach Prefect at http://127.0.0.1:4200/api: " + "x" * 200,
        }
        app.nudge()
        await until(lambda: "outbox 3 not in Prefect" in text_of(app.query_one("#status-line")), pilot)
        header = text_of(app.query_one("#status-line"))
        assert "oldest 12s" in header and "drain: cannot reach Prefect" in header
        assert "x" * 61 not in header and "…" in header  # the error is bounded
        client.backlog_state = {"executions": 1, "oldest_age_s": 0.2, "limit": 10000, "drain_last_error": "old"}
        app.nudge()
        await until(lambda: "outbox 1 not in Prefect" in text_of(app.query_one("#status-line")), pilot)
        assert "drain:" not in text_of(app.query_one("#status-line"))  # younger than the back-off: not stuck
        client.backlog_state = {"executions": 10000, "oldest_age_s": 90.0, "limit": 10000}
        app.nudge()
        await until(lambda: "outbox 10000/10000 not in Prefect" in text_of(app.query_one("#status-line")), pilot)
        client.backlog_state = {"executions": 0, "oldest_age_s": 0.0, "limit": 10000}
        app.nudge()
        await until(lambda: "outbox ✓" in text_of(app.query_one("#status-line")), pilot)

    drive(body, client=client, poll_interval=0.05)


# launches that remember ----------------------------------------------------------------------
async def open_form(app: Any, pilot: Any, workflow_id: str, version: int | None = None) -> Any:
    from flowdeck.tui.launch import LaunchScreen

    choice = [v for v in app.client.workflows() if v.workflow_id == workflow_id]
    app.launch(choice[-1] if version is None else next(v for v in choice if v.version == version))
    await until(lambda: isinstance(app.screen, LaunchScreen), pilot)
    await pilot.pause()
    return app.screen


def test_launch_form_focuses_the_first_field_and_defaults_to_sync_without_a_wait() -> None:
    async def body(app: Any, pilot: Any) -> None:
        app.select_workflow("hello")
        await pilot.press("l", *"Ada")  # typed right after l: lands in the first field
        form = app.screen
        assert form.query_one("#field-name").value == "Ada"
        assert form.query_one("#launch-mode").value == "sync"
        await pilot.press("escape")
        form = await open_form(app, pilot, "score_lead", 2)  # has a Wait: async
        assert form.query_one("#launch-mode").value == "async"
        assert form.focused.id == "field-company_size"

    drive(body)


def test_launch_form_shows_every_problem_at_once_next_to_its_field_with_schema_hints() -> None:
    async def body(app: Any, pilot: Any) -> None:
        form = await open_form(app, pilot, "score_lead", 2)
        labels = " ".join(text_of(label) for label in form.query(".field-label"))
        for hint in ("integer · ≥ 0 · ≤ 100000", "format email", "one of web, referral, event", 'default "web"'):
            assert hint in labels, hint
        await pilot.press(*"12x")  # letters in an integer field: shown, not swallowed
        assert form.query_one("#field-company_size").value == "12x"
        assert "'12x' is not a whole number" in text_of(form.query_one("#error-company_size"))
        form.query_one("#field-email").value = "not-an-email"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "not a whole number" in text_of(form.query_one("#error-company_size"))
        assert "is required" in text_of(form.query_one("#error-budget"))
        assert "'not-an-email' is not a valid email" in text_of(form.query_one("#error-email"))
        assert "3 problem(s)" in text_of(form.query_one("#launch-errors"))
        assert form.query_one("#field-email").has_class("-invalid-field")
        assert app.client.launched == []

    drive(body)


def test_the_last_input_per_workflow_is_remembered_in_flowdeck_home(tmp_path: Path) -> None:
    async def first(app: Any, pilot: Any) -> None:
        form = await open_form(app, pilot, "score_lead", 1)
        form.query_one("#field-company_size").value = "42"
        form.query_one("#field-budget").value = "10.5"
        await pilot.press("ctrl+s")
        await until(lambda: len(app.client.launched) == 1, pilot)

    drive(first, memory_dir=tmp_path)
    remembered = json.loads((tmp_path / "last_inputs.json").read_text())
    assert remembered == {"score_lead": {"company_size": 42, "budget": 10.5, "source": "web", "vip": False}}

    async def again(app: Any, pilot: Any) -> None:
        form = await open_form(app, pilot, "score_lead", 1)
        assert form.query_one("#field-company_size").value == "42"
        assert "your last input" in text_of(form.query_one("#launch-note"))
        await pilot.press("ctrl+d")  # the schema's defaults instead
        await until(lambda: app.screen.query_one("#field-company_size").value == "", pilot)

    drive(again, memory_dir=tmp_path)


def test_launch_memory_is_bounded_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    from flowdeck.tui import memory

    store = memory.LaunchMemory(tmp_path / "m.json")
    (tmp_path / "m.json").write_text("{not json")
    assert store.last("x") is None
    for n in range(memory.MAX_WORKFLOWS + 5):
        store.remember(f"w{n}", {"n": n})
    kept = json.loads((tmp_path / "m.json").read_text())
    assert len(kept) == memory.MAX_WORKFLOWS and "w0" not in kept and store.last("w204") == {"n": 204}
    store.remember("big", {"blob": "x" * memory.MAX_BYTES})
    assert store.last("big") is None


# the workflow itself ------------------------------------------------------------------------
def test_structure_view_and_diff_between_two_versions() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.structure import WorkflowScreen

        app.select_workflow("score_lead")
        await pilot.press("v")
        await until(lambda: isinstance(app.screen, WorkflowScreen), pilot)
        screen = app.screen
        tree = text_of(screen.query_one("#structure-tree"))
        assert "cool_off [wait]  15m" in tree and "fetch_company [http]" in tree
        assert "id: score_lead" in text_of(screen.query_one("#structure-yaml"))
        await pilot.press("d")
        diff = text_of(screen.query_one("#diff-text"))
        assert "v1 → v2" in diff and "+├─ fetch_company [http]" in diff and "-version: 1" in diff

    drive(body)


# opening straight on something -------------------------------------------------------------
@pytest.mark.parametrize("where", ["execution", "workflow"])
def test_open_on_an_execution_or_a_workflow(where: str) -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.detail import DetailScreen
        from flowdeck.tui.structure import WorkflowScreen

        expected = DetailScreen if where == "execution" else WorkflowScreen
        await until(lambda: isinstance(app.screen, expected), pilot)
        if where == "execution":
            assert app.screen.execution_id == ASYNC
        else:
            assert app.screen.workflow_id == "hello"

    options = {"open_execution": ASYNC} if where == "execution" else {"open_workflow": "hello"}
    drive(body, **options)


def test_open_on_an_unknown_workflow_says_which_exist() -> None:
    async def body(app: Any, pilot: Any) -> None:
        await until(lambda: any("no workflow 'nope'" in n.message for n in app._notifications), pilot)
        assert app.screen is app.main

    drive(body, open_workflow="nope")


# room --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_the_main_screen_fits_and_uses_the_room(size: tuple[int, int]) -> None:
    async def body(app: Any, pilot: Any) -> None:
        svg = app.export_screenshot()
        assert "Quit" in svg and "palette" in svg  # the footer is whole
        assert app.table.size.width >= size[0] - 4  # the table spans the screen (its border and scrollbar aside)
        assert app.table.wide == (size[0] >= 140)
        assert ("started" in [c.key.value for c in app.table.columns.values()]) == (size[0] >= 100)

    drive(body, size=size)


def test_every_text_field_has_a_bound() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from textual.widgets import Input

        fields = list(app.query(Input))
        await open_detail(app, pilot, ASYNC)
        fields += list(app.screen.query(Input))
        app.pop_screen()
        await pilot.pause()
        app.launch(next(v for v in app.client.workflows() if v.workflow_id == "score_lead" and v.version == 2))
        await pilot.pause()
        fields += list(app.screen.query(Input))
        assert len(fields) >= 5 and all(0 < field.max_length <= 100_000 for field in fields), [
            (f.id, f.max_length) for f in fields
        ]
        app.pop_screen()
        await pilot.pause()
        search = app.main.query_one("#filter-search", Input)
        search.focus()
        search.insert_text_at_cursor("x" * 500)  # as a paste would
        await pilot.pause()
        assert len(search.value) <= 200  # Textual refuses a paste past the bound
        search.value = "y" * 500  # set some other way: the filter still takes at most the bound
        await pilot.pause()
        assert app.table.filter.search == "y" * 200

    drive(body)
