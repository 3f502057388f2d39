"""Pilot tests of the detail screen's story on fixed data (tui.fixed.FixedClient): header,
input and trigger, the step timeline with tries and waits, outputs and errors, logs with
follow and filters, the expression playground, re-runs that jump to the new execution; and
how the client settles what the task runs alone do not say."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.tui import ASYNC, SUCCESS, SYNC, drive, open_detail, text_of, until

os.environ["TEXTUAL_ANIMATIONS"] = "none"


# the story of an execution --------------------------------------------------------------------
def test_detail_header_input_trigger_and_timeline_of_a_retried_waiting_execution() -> None:
    async def body(app: Any, pilot: Any) -> None:
        screen = await open_detail(app, pilot, ASYNC)
        header = text_of(screen.query_one("#detail-header"))
        for part in ("waiting", "hello@1", "async", "attempt 2", "trigger api", "created", "ended", "resumes in"):
            assert part in header, part
        steps = screen.detail.steps
        assert [(s.name, s.try_number, s.status) for s in steps] == [
            ("fetch_company", 1, "failed"),
            ("fetch_company", 2, "success"),
            ("score", 1, "success"),
            ("cool_off", 1, "waiting"),
        ]
        table = screen.query_one("#steps")
        bars = [str(table.get_row_at(i)[-1]) for i in range(4)]
        assert bars[3].count("┄") > 0 and "━" in bars[0]
        assert bars[0].index("━") < bars[1].index("━")  # one shared axis: the retry starts later
        assert "  " in bars[1][: bars[1].index("━")]  # the gap of the retry delay
        inputs = text_of(screen.query_one("#detail-input"))
        assert '"company_size": 120' in inputs and '"request_id": "req-7f3a"' in inputs
        assert "✗ this try failed" in text_of(screen.query_one("#step-output"))
        await pilot.press("j")
        assert '"size": 120' in text_of(screen.query_one("#step-output"))
        await pilot.press("G")
        assert "waiting" in text_of(screen.query_one("#step-output"))

    drive(body)


def test_detail_of_a_sync_execution_shows_each_steps_output_and_the_failing_step() -> None:
    async def body(app: Any, pilot: Any) -> None:
        screen = await open_detail(app, pilot, SYNC)
        assert [s.status for s in screen.detail.steps] == ["success", "failed"]
        assert screen.detail.steps[0].branch == "by_name"
        output = text_of(screen.query_one("#step-output"))
        assert '"by_name"' in output and "in memory only" not in output  # the step's recorded output
        assert "final error at step score" in output
        await pilot.press("j")
        assert "✗ code step raised ValueError: budget missing" in text_of(screen.query_one("#step-output"))

    drive(body)


def test_logs_filter_by_text_and_level_and_follow_mode() -> None:
    async def body(app: Any, pilot: Any) -> None:
        screen = await open_detail(app, pilot, SUCCESS)
        log = screen.query_one("#logs")
        await pilot.press("3")
        assert screen.query_one("#detail-tabs").active == "logs-tab"
        assert len(log.lines) == 5 and log.auto_scroll
        await pilot.press("slash", *"retry")
        assert [line.text for line in log.lines] == [
            "--:--:-- WARNING fetch_company: HTTP 503 from crm.example, retrying in 2s"
        ]
        screen.query_one("#log-filter").value = ""
        await pilot.press("escape", "L", "L")  # ALL -> INFO -> WARNING
        await pilot.pause()
        assert screen.level == "WARNING" and len(log.lines) == 2
        from datetime import timedelta

        from flowdeck.tui.client import LogLine
        from flowdeck.tui.detail import LogsLoaded

        later = screen.lines[-1].timestamp
        screen.post_message(
            LogsLoaded([LogLine(later + timedelta(seconds=n + 1), "ERROR", f"line {n}") for n in range(60)])
        )
        await until(lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y, pilot)
        await pilot.press("tab")  # into the log
        log.focus()
        await pilot.press("k", "k")  # the user scrolls up: following stops
        assert not log.auto_scroll and "follow off" in log.border_subtitle
        await pilot.press("G")
        assert log.auto_scroll
        log.scroll_y = 0
        await pilot.pause()
        assert not log.auto_scroll
        await pilot.press("f")
        assert log.auto_scroll and log.border_subtitle == "following"

    drive(body, size=(120, 30))


def test_expression_playground_shows_typed_values_and_errors_never_a_crash() -> None:
    async def body(app: Any, pilot: Any) -> None:
        screen = await open_detail(app, pilot, SUCCESS)
        await pilot.press("4")
        assert screen.focused.id == "expr"
        result = screen.query_one("#expr-result")
        for expression, expected in [
            ("{{ input.company_size }}", "120  (number)"),
            ("score.points * 2", "84  (number)"),
            ("Hi {{ input.contact.email }}", '"Hi ada@example.com"  (string)'),
            ("trigger.type", '"api"  (string)'),
            ("{{ $nope( }}", "✗"),
            ("$sum(", "✗"),
        ]:
            screen.query_one("#expr").value = expression
            await until(lambda expected=expected: expected in text_of(result), pilot)
        assert "context: input, trigger, execution" in text_of(screen.query_one("#expr-context"))

    drive(body)


def test_rerun_from_the_detail_jumps_to_the_new_execution() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.detail import DetailScreen

        await open_detail(app, pilot, SUCCESS)
        await pilot.press("r")
        await until(lambda: isinstance(app.screen, DetailScreen) and app.screen.execution_id != SUCCESS, pilot)
        assert app.client.launched[0][3]["company_size"] == 120
        assert len(app.screen_stack) == 2  # the new detail replaced the old one

    drive(body)


def test_edited_rerun_opens_the_form_prefilled_then_the_new_execution() -> None:
    async def body(app: Any, pilot: Any) -> None:
        from flowdeck.tui.detail import DetailScreen
        from flowdeck.tui.launch import LaunchScreen

        await open_detail(app, pilot, SUCCESS)
        await pilot.press("R")
        await until(lambda: isinstance(app.screen, LaunchScreen), pilot)
        form = app.screen
        assert form.query_one("#field-company_size").value == "120"
        assert "prefilled with the execution's input" in text_of(form.query_one("#launch-note"))
        form.query_one("#field-company_size").value = "7"
        await pilot.press("ctrl+s")
        await until(lambda: isinstance(app.screen, DetailScreen) and app.screen.execution_id != SUCCESS, pilot)
        assert app.client.launched[0][3]["company_size"] == 7

    drive(body)


# what the task runs alone do not say -------------------------------------------------------
def test_steps_are_settled_tries_waits_and_ends(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from flowdeck.tui.client import StepRow, settle_steps

    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    steps = [
        StepRow("call", "call", "failed", 1, t0, t0 + timedelta(seconds=1)),
        StepRow("call", "call", "success", 1, t0 + timedelta(seconds=3), t0 + timedelta(seconds=4)),
        StepRow("nap", "nap", "running", 1, t0 + timedelta(seconds=4), None),
    ]
    settle_steps(steps, {"status": "waiting"})
    assert [(s.try_number, s.status) for s in steps] == [(1, "failed"), (2, "success"), (1, "waiting")]
    ended = (t0 + timedelta(seconds=12.9)).isoformat()
    settle_steps(steps, {"status": "cancelled", "ended_at": ended})
    assert steps[2].status == "cancelled" and steps[2].ended_at == t0 + timedelta(seconds=12.9)
    late = [
        StepRow("nap", "nap", "running", 1, t0, t0 + timedelta(seconds=19.9)),
        StepRow("nap2", "nap2", "cancelled", 1, t0, t0 + timedelta(seconds=13.3)),  # closed after the end
    ]
    settle_steps(late, {"status": "cancelled", "ended_at": ended})
    assert [s.ended_at for s in late] == [t0 + timedelta(seconds=12.9)] * 2  # never longer than the execution
    failing = [StepRow("a", "a", "success", 1, t0, t0), StepRow("b", "b", "running", 1, t0, None)]
    settle_steps(failing, {"status": "failed", "error": {"step_name": "b", "message": "boom"}})
    assert failing[1].status == "failed" and failing[1].error == "boom"


def test_a_condition_whose_branch_has_no_steps_names_it(tmp_path: Path) -> None:
    from flowdeck.definition.catalog import load_catalog
    from flowdeck.tui.client import StepRow, _mark_branches

    (tmp_path / "empty_branch.yaml").write_text(
        """id: empty_branch
name: Empty branch
version: 1
status: published
steps:
  - id: pick
    type: condition
    branches:
      - name: warm
        when: "true"
        steps: []
    default:
      - {id: cold, type: output, fields: {t: cold}}
  - {id: done, type: output, fields: {t: warm}}
"""
    )
    catalog = load_catalog(tmp_path)
    definition = catalog.resolve("empty_branch", 1, allow_draft=True)
    steps = [StepRow("pick", "pick", "success", 1, None, None), StepRow("done", "done", "success", 1, None, None)]
    _mark_branches(steps, definition)
    assert steps[0].branch == "warm"
