"""Pilot tests of the dashboard against the real Prefect server of the suite.

The dashboard reaches Prefect only through `tui.client.EngineClient`; "changes made
elsewhere" are made through a second engine, as the CLI or the HTTP API would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from support.tui import text_of, until


def published(workflow_id: str, name: str, body: str, *, requires: str | None = None) -> str:
    """Version 1 of a published workflow: the header, with `requires` an input of that one
    required string, then `body` (its steps and any other keys)."""
    header = f"id: {workflow_id}\nname: {name}\nversion: 1\nstatus: published\n"
    if requires is not None:
        header += f"input:\n  type: object\n  required: [{requires}]\n  properties:\n    {requires}: {{type: string}}\n"
    return header + body


GREET = published(
    "tui_greet",
    "Greet",
    """input:
  type: object
  required: [name]
  properties:
    name: {type: string, description: Who to greet}
    tone: {type: string, enum: [warm, dry], default: warm}
    times: {type: integer, default: 1}
steps:
  - id: pick
    type: condition
    branches:
      - name: warm
        when: "input.tone = 'warm'"
        steps:
          - {id: warm_out, type: output, fields: {message: "Hello, {{ input.name }}!"}}
    default:
      - {id: dry_out, type: output, fields: {message: "{{ input.name }}."}}
""",
)

SLOW = published(
    "tui_slow",
    "Slow",
    """steps:
  - {id: nap, type: wait, duration: 10m}
  - {id: done, type: output, fields: {ok: true}}
""",
)

BROKEN = published("tui_broken", "Broken", "steps:\n  - {id: a, type: htp}\n")


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    (tmp_path / "greet.yaml").write_text(GREET)
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    return tmp_path


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_app(definitions: Path, **options: Any) -> Any:
    from flowdeck.tui.app import build_app
    from flowdeck.tui.client import EngineClient

    client = EngineClient.open(str(definitions), description="test Prefect")
    return build_app(client, **options)


def select_workflow(app: Any, workflow_id: str, version: int | None = None) -> None:
    from flowdeck.tui.app import _walk

    tree = app.query_one("#workflow-tree")
    for node in _walk(tree.root):
        data = node.data
        if data is None or data.workflow_id != workflow_id:
            continue
        if version is None or (
            data.version is not None and data.version.version == version and node.parent is not tree.root
        ):
            tree.move_cursor(node)
            app.query_one("WorkflowsPane")._select(data)
            return
    raise AssertionError(f"no {workflow_id} in the tree")


def test_dashboard_shows_workflows_problems_and_source(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.2)
            tree_text = " ".join(
                str(n.label) for n in __import__("flowdeck.tui.app").tui.app._walk(app.query_one("#workflow-tree").root)
            )
            assert "tui_greet" in tree_text and "tui_slow" in tree_text
            assert "tui_broken ✗" in tree_text and "1 error(s)" in tree_text
            await pilot.press("e")  # jump to the broken definition
            source = text_of(app.query_one("#source"))
            assert "broken.yaml" in app.query_one("WorkflowsPane").selection.file.path
            assert "htp" in source and "error" in source
            await pilot.press("l")  # a broken definition cannot be launched: a notification, no crash
            await pilot.pause(0.1)
            assert len(app.screen_stack) == 1

    run(go())


def test_launch_form_checks_input_then_sync_run_shows_result_and_steps(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from textual.widgets import Input

        from flowdeck.tui.detail import DetailScreen
        from flowdeck.tui.launch import LaunchScreen

        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            select_workflow(app, "tui_greet", 1)
            await pilot.press("l")
            await until(lambda: isinstance(app.screen, LaunchScreen), pilot)
            form = app.screen
            assert form.query_one("#field-times", Input).value == "1"  # default prefilled
            assert form.query_one("#field-tone").value == "warm"  # enum as a choice
            assert form.query_one("#launch-mode").value == "sync"  # no Wait: sync, as `flowdeck run`
            assert form.focused is form.query_one("#field-name")
            await pilot.press("ctrl+s")  # name is required: stays open with the problem
            await pilot.pause(0.1)
            assert isinstance(app.screen, LaunchScreen)
            assert "is required" in text_of(form.query_one("#error-name"))
            form.query_one("#field-name", Input).value = "Ada"
            await pilot.press("ctrl+s")
            await until(lambda: isinstance(app.screen, DetailScreen), pilot, timeout=30)
            detail = app.screen
            await until(lambda: "Hello, Ada!" in text_of(detail.query_one("#step-output")), pilot, timeout=15)
            await until(lambda: detail.detail is not None and len(detail.detail.steps) >= 2, pilot, timeout=15)
            steps = detail.detail.steps
            assert [s.key for s in steps] == ["pick", "warm_out"]
            assert steps[0].branch == "warm" and steps[0].status == "success"
            execution_id = detail.execution_id
            await pilot.press("escape")
            await until(lambda: execution_id in app.table.known, pilot)

    run(go())


def test_async_run_appears_at_once_then_cancel(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from flowdeck.tui.launch import LaunchScreen

        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.fetches > 0, pilot)  # earlier tests' runs are known
            select_workflow(app, "tui_slow", 1)
            await pilot.press("l")
            await until(lambda: isinstance(app.screen, LaunchScreen), pilot)
            assert app.screen.query_one("#launch-mode").value == "async"  # it waits: async by default
            before = set(app.table.known)
            await pilot.press("ctrl+s")
            waited = await until(lambda: set(app.table.known) - before != set(), pilot, timeout=20)
            (execution_id,) = set(app.table.known) - before
            assert app.table.known[execution_id].status == "pending"
            assert waited < 5
            app.table.move_cursor(row=app.table.get_row_index(execution_id))
            app.table.focus()
            await pilot.press("c", "y")  # confirmed
            await until(lambda: app.table.known[execution_id].status == "cancelled", pilot, timeout=10)
            cell = app.table.get_cell(execution_id, "status")
            assert "cancelled" in str(cell)

    run(go())


def test_changes_made_elsewhere_show_within_a_second(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from flowdeck.execution.service import Flowdeck

        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot, Flowdeck.open(definitions) as other:
            await until(lambda: app.fetches > 0, pilot)
            app.table.focus()
            body = await other.submit("tui_slow", 1, {})
            execution_id = body["execution_id"]
            appeared = await until(lambda: execution_id in app.table.known, pilot, timeout=5)
            # keep the cursor on an older row: updates must not move it
            app.table.move_cursor(row=app.table.row_count - 1)
            kept = app.table.selected_id
            await other.cancel(execution_id)
            changed = await until(lambda: app.table.known[execution_id].status == "cancelled", pilot, timeout=5)
            assert app.table.selected_id == kept
            # Speed is a benchmark's business, not a timed test's (the target, 1 s, is met
            # on a quiet machine: 0.45-0.99 s); here: it shows without a key press.
            print(f"\nappeared after {appeared:.3f}s, status change after {changed:.3f}s")

    run(go())


def test_filters_and_search(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from flowdeck.execution.service import Flowdeck

        async with Flowdeck.open(definitions) as other:
            slow = (await other.submit("tui_slow", 1, {}))["execution_id"]
            call = await other.run_sync("tui_greet", 1, {"name": "x"})
            await call.finish()
            greet = call.execution_id
        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: slow in app.table.known and greet in app.table.known, pilot)
            app.filter_workflow("tui_greet")
            await until(
                lambda: app.table.row_count > 0 and greet in app.table.rows and slow not in app.table.rows, pilot
            )
            app.filter_workflow(None)
            app.filter_status("pending")
            await until(lambda: slow in app.table.rows and greet not in app.table.rows, pilot)
            app.clear_filters()
            await pilot.press("slash")
            await pilot.press(*greet[-12:])  # the random end: ids minted close together share their start
            await until(lambda: list(app.table.rows) == [greet], pilot)
            assert "filter ~" in text_of(app.query_one("#status-line"))

    run(go())


def test_rerun_uses_the_same_input(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from flowdeck.execution.service import Flowdeck

        async with Flowdeck.open(definitions) as other:
            call = await other.run_sync("tui_greet", 1, {"name": "Grace", "tone": "dry"})
            await call.finish()
        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: call.execution_id in app.table.rows, pilot)
            before = set(app.table.known)
            app.table.move_cursor(row=app.table.get_row_index(call.execution_id))
            app.table.focus()
            await pilot.press("r")  # a sync run again: its result opens in the detail screen
            from flowdeck.tui.detail import DetailScreen

            await until(lambda: isinstance(app.screen, DetailScreen), pilot, timeout=20)
            new_id = app.screen.execution_id
            assert new_id not in before and new_id != call.execution_id
            async with Flowdeck.open(definitions) as other:
                body = await other.status(new_id)
            assert body["output"] == {"message": "Grace."}

    run(go())


def test_five_thousand_rows_stay_responsive() -> None:
    """In-place merges of thousands of rows (fixed data through the client seam)."""

    async def go() -> None:
        from dataclasses import replace

        from flowdeck.tui.app import build_app
        from flowdeck.tui.fixed import FixedClient

        client = FixedClient(executions=5000)
        app = build_app(client, poll_interval=3600)
        started = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.table.row_count == 5000, pilot, timeout=30)
            first = time.perf_counter() - started
            app.table.move_cursor(row=2500)
            kept = app.table.selected_id
            rows = [replace(r, status="failed") for r in list(client._rows.values())[:100]]
            started = time.perf_counter()
            app.table.merge(rows, complete=False)
            merge = time.perf_counter() - started
            await pilot.pause()
            update = time.perf_counter() - started
            assert app.table.selected_id == kept
            print(
                f"\n5000 rows first render {first:.3f}s; 100 changed rows: "
                f"merge {merge * 1000:.1f} ms, on screen after {update:.3f}s"
            )
            assert merge < 0.1 and update < 2.0
            started = time.perf_counter()
            await pilot.press("s")  # a filter: a full pass over every row
            await until(lambda: app.table.filter.status == "pending", pilot)
            print(f"status filter over 5000 rows {time.perf_counter() - started:.3f}s")

    run(go())


RETRIED = published(
    "tui_retried",
    "Retried then waits",
    """retries: {max_retries: 2, delay: 200ms}
steps:
  - {id: call, type: http, method: GET, url: "{{ input.base_url }}/flaky"}
  - {id: nap, type: wait, duration: 10m}
  - {id: done, type: output, fields: {ok: true}}
""",
    requires="base_url",
)


def test_async_detail_shows_the_retries_the_wait_and_a_cancel_that_ends_the_wait(
    prefect_api: str, definitions: Path, http_server: Any, start_worker: Any
) -> None:
    """Against a real worker: the retried step once per try on one time axis, the wait as
    waiting with its countdown; cancelled, the wait ends when the execution does."""
    (definitions / "retried.yaml").write_text(RETRIED)
    calls: list[int] = []

    def flaky(request: Any) -> tuple[int, Any]:
        calls.append(1)
        return (503, {"error": "busy"}) if len(calls) == 1 else (200, {"ok": True})

    http_server.routes["GET /flaky"] = flaky
    start_worker(definitions)

    async def go() -> None:
        from flowdeck.execution.service import Flowdeck
        from flowdeck.tui.detail import DetailScreen

        async with Flowdeck.open(definitions) as other:
            execution_id = (await other.submit("tui_retried", 1, {"base_url": http_server.url}))["execution_id"]
        app = make_app(definitions, open_execution=execution_id)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: isinstance(app.screen, DetailScreen), pilot)
            screen = app.screen

            def waiting() -> bool:
                detail = screen.detail
                return detail is not None and any(s.name == "nap" and s.status == "waiting" for s in detail.steps)

            await until(waiting, pilot, timeout=90)
            assert len(calls) == 2  # the call was tried twice
            # each try is a task run of its own: the failed first try closed Failed, the second a new row
            tries = lambda: [(s.name, s.try_number, s.status) for s in screen.detail.steps if s.name == "call"]  # noqa: E731
            await until(lambda: len(tries()) == 2, pilot, timeout=15)
            assert tries() == [("call", 1, "failed"), ("call", 2, "success")], tries()
            table = screen.query_one("#steps")
            assert [str(table.get_row_at(i)[3]) for i in range(2)] == ["1", "2"]
            assert "failed" in str(table.get_row_at(0)[2]) and "success" in str(table.get_row_at(1)[2])
            steps = screen.detail.steps
            header = text_of(screen.query_one("#detail-header"))
            assert "waiting" in header and "attempt 2" in header and "resumes in" in header
            assert "┄" in str(screen.query_one("#steps").get_row_at(len(steps) - 1)[-1])
            await pilot.press("c", "y")
            await until(lambda: screen.detail.row.status == "cancelled", pilot, timeout=30)
            await until(lambda: all(s.status != "waiting" for s in screen.detail.steps), pilot, timeout=10)
            nap = next(s for s in screen.detail.steps if s.name == "nap")
            assert nap.ended_at is not None and nap.ended_at <= screen.detail.row.ended_at

    run(go())


CODE_FAIL = published(
    "tui_code_fail",
    "Fails in a code step",
    """steps:
  - id: boom
    type: code
    code: |
      def run(ctx):
          raise ValueError("no budget")
""",
    requires="name",
)


def test_sync_detail_shows_the_failing_step_its_error_and_the_logs(prefect_api: str, definitions: Path) -> None:
    async def go() -> None:
        from flowdeck.tui.detail import DetailScreen

        (definitions / "code_fail.yaml").write_text(CODE_FAIL)
        app = make_app(definitions)
        async with app.run_test(size=(120, 40)) as pilot:
            select_workflow(app, "tui_code_fail", 1)
            await pilot.press("l")
            await until(lambda: app.screen.query_one("#field-name") is not None, pilot)
            app.screen.query_one("#field-name").value = "Ada"
            await pilot.press("ctrl+s")
            await until(lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, pilot, 30)
            screen = app.screen
            await until(lambda: len(screen.detail.steps) >= 1, pilot, timeout=15)
            boom = next(s for s in screen.detail.steps if s.name == "boom")
            assert boom.status == "failed" and "no budget" in (boom.error or "")
            assert "final error at step boom" in text_of(screen.query_one("#step-output"))
            await until(lambda: len(screen.lines) > 0, pilot, timeout=15)  # the run's logs, shipped
            assert any("boom" in line.message for line in screen.lines)

    run(go())


LOOKUP = published(
    "tui_lookup",
    "Looks a contact up over HTTP, then fails",
    """steps:
  - {id: fetch_company, type: http, method: GET, url: "{{ input.base_url }}/company"}
  - {id: lookup_contact, type: http, method: GET, url: "{{ input.base_url }}/contact"}
""",
    requires="base_url",
)


def test_sync_detail_shows_each_steps_output_from_the_outbox_then_from_prefect(
    prefect_api: str, definitions: Path, http_server: Any
) -> None:
    """A sync execution's steps carry their outputs (the HTTP response) and the failing
    step's error, read from the outbox before the drain and from Prefect after it."""
    (definitions / "lookup.yaml").write_text(LOOKUP)
    http_server.routes["GET /company"] = lambda request: (200, {"name": "Acme", "size": 120})
    http_server.routes["GET /contact"] = lambda request: (404, {"error": "no such contact"})

    async def go() -> None:
        from flowdeck.execution.service import Flowdeck
        from flowdeck.store import read_model
        from flowdeck.tui.detail import DetailScreen

        async with Flowdeck.open(definitions) as engine:
            call = await engine.run_sync("tui_lookup", 1, {"base_url": http_server.url})
            assert call.body["status"] == "failed"
            # before the drain (the read model's answer while the outbox holds it undrained)
            before = read_model.outbox_detail(engine.outbox, engine.outbox.execution(call.execution_id))
            company = next(s for s in before.steps if s.key == "fetch_company")
            assert company.has_output and company.output["body"] == {"name": "Acme", "size": 120}
            assert [s.status for s in before.steps] == ["success", "failed"]
            assert before.trigger == {"type": "manual"} and before.input_data == {"base_url": http_server.url}
            lines = read_model._outbox_logs(engine.outbox, call.execution_id, None)
            assert any("lookup_contact" in line.message and "404" in line.message for line in lines)
            await call.finish()
            assert engine.outbox.execution(call.execution_id).drained
            # after it, as a process whose outbox never held it reads it: Prefect and result storage
            view = None
            for _ in range(100):
                view = await read_model.execution_detail(engine.api, call.execution_id, outbox=None)
                if len(view.steps) == 2:
                    break
                await asyncio.sleep(0.1)
            assert view is not None and view.flow_run_id
            assert [(s.key, s.status) for s in view.steps] == [(s.key, s.status) for s in before.steps]
            company = next(s for s in view.steps if s.key == "fetch_company")
            assert company.has_output and company.output == next(s for s in before.steps if s.has_output).output
            assert view.trigger == before.trigger
            logs = await read_model.logs(engine.api, call.execution_id, None)
            assert any("lookup_contact" in line.message for line in logs)

        app = make_app(definitions, open_execution=call.execution_id)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None, pilot, 15)
            screen = app.screen
            await until(lambda: len(screen.detail.steps) == 2, pilot, timeout=15)
            output = text_of(screen.query_one("#step-output"))
            assert "step fetch_company (try 1)" in output and '"Acme"' in output and "no recorded output" not in output
            await pilot.press("j")
            output = text_of(screen.query_one("#step-output"))
            assert "✗" in output and "404" in output and "final error at step lookup_contact" in output
            await until(lambda: len(screen.lines) > 0, pilot, timeout=15)
            assert any("lookup_contact" in line.message for line in screen.lines)

    run(go())
