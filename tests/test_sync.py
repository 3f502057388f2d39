"""Sync execution end to end, in process through `Flowdeck`, on a real Prefect server.

Every step type runs from a real definition (tests/sync_definitions/), HTTP steps call the
real local `http_server`, and what Prefect records (flow run, tags, state, one task run per
executed step) is read back from the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowdeck.definition.catalog import load_catalog, validate_paths
from flowdeck.errors import InvalidInput, NotRunnable, UnknownVersion, UnknownWorkflow
from flowdeck.execution.service import Flowdeck
from flowdeck.store import encoding as recording
from flowdeck.store import read_model

DEFINITIONS = Path(__file__).parent / "sync_definitions"
EXEC_ID = r"^exec_[0-9a-f]{32}$"


@pytest.fixture(scope="module")
def catalog() -> Any:
    loaded = load_catalog(DEFINITIONS)
    assert not loaded.has_errors, [str(p) for f in loaded.files for p in f.problems]
    return loaded


Inspect = Callable[[Flowdeck, Any], Awaitable[Any]]


def run(
    prefect_api: str,
    catalog: Any,
    workflow_id: str,
    input_data: Any = None,
    *,
    version: str | int = "latest",
    allow_draft: bool = False,
    inspect: Inspect | None = None,
) -> tuple[dict[str, Any], Any]:
    """One sync call; returns the body and whatever `inspect(engine, call)` returns."""

    async def go() -> tuple[dict[str, Any], Any]:
        async with Flowdeck.open(catalog=catalog, api_url=prefect_api) as engine:
            call = await engine.run_sync(
                workflow_id, version, {} if input_data is None else input_data, allow_draft=allow_draft
            )
            assert call.body["execution_id"] == call.execution_id
            await call.finish()
            extra = await inspect(engine, call) if inspect else None
            return call.body, extra

    return asyncio.run(go())


async def prefect_view(
    engine: Flowdeck, execution_id: str, expected_steps: int, timeout: float = 8.0
) -> tuple[Any, dict[str, str]]:
    """The flow run behind an execution and its task runs {name: state type}.

    Task runs arrive through events, so they are polled until `expected_steps` are there.
    """
    flow_run = await read_model.read_flow_run(engine.api, execution_id)
    assert flow_run is not None, f"no flow run for {execution_id}"
    flow_run_id = flow_run.id
    deadline = time.monotonic() + timeout
    while True:
        task_runs = await engine.api.read_task_runs(flow_run_id)
        settled = [t for t in task_runs if t.state_type is not None and t.state_type.value in ("COMPLETED", "FAILED")]
        if len(settled) >= expected_steps or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    # give late extra task runs (which would be a bug) a moment to show up too
    await asyncio.sleep(0.2)
    task_runs = await engine.api.read_task_runs(flow_run_id)
    return flow_run, {t.name: t.state_type.value for t in task_runs if t.state_type is not None}


def with_prefect(expected_steps: int) -> Inspect:
    async def inspect(engine: Flowdeck, call: Any) -> tuple[Any, dict[str, str]]:
        return await prefect_view(engine, call.execution_id, expected_steps)

    return inspect


def assert_flow_run(flow_run: Any, workflow_id: str, version: int, state: str) -> None:
    assert flow_run.name == f"{workflow_id} v{version}"
    assert set(flow_run.tags) >= {"flowdeck", f"workflow:{workflow_id}", f"version:{version}", "mode:sync"}
    assert flow_run.state.type.value == state, flow_run.state


# --------------------------------------------------------------------------------------
def test_definitions_are_valid() -> None:
    problems = validate_paths([DEFINITIONS])
    errors = [str(p) for p in problems if p.severity == "error"]
    assert errors == []
    for path in DEFINITIONS.glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../../schemas/workflow.schema.json\n"), path


# http ---------------------------------------------------------------------------------
def test_http_steps_send_headers_query_json_and_text(prefect_api: str, catalog: Any, http_server: Any) -> None:
    http_server.routes["GET /contacts"] = lambda request: (200, {"id": 42, "email": request["query"].get("email")})
    http_server.routes["POST /contacts"] = (201, {"id": "c-9"})
    http_server.routes["PUT /notes"] = (200, "noted")  # answered as text/plain
    http_server.routes["GET /missing"] = (404, {"error": "gone"})
    data = {"base_url": http_server.url, "token": "s3cret", "email": "ann@example.com", "n": 3}

    body, (flow_run, steps) = run(prefect_api, catalog, "sd_http", data, inspect=with_prefect(5))

    assert body["status"] == "success", body
    assert body["execution_id"] == recording.execution_id_of(flow_run)
    assert body["output"] == {
        "contact": {"id": 42, "email": "ann@example.com"},
        "contact_status": 200,
        "created_id": "c-9",
        "created_status": 201,
        "note_reply": "noted",
        "missing_status": 404,
        "missing_body": {"error": "gone"},
    }
    get, post, put, missing = http_server.calls
    assert (get["method"], get["path"], get["query"]) == (
        "GET",
        "/contacts",
        {"email": "ann@example.com", "limit": "3"},
    )
    assert get["headers"]["Authorization"] == "Bearer s3cret"
    assert get["headers"]["X-Request-Number"] == "req-3"
    assert (post["method"], post["path"]) == ("POST", "/contacts")
    assert post["headers"]["Content-Type"].startswith("application/json")
    assert post["headers"]["X-Source"] == "flowdeck-test"
    assert post["body"] == {"email": "ann@example.com", "found_id": 42, "n": 3, "tags": ["lead", "n3"]}
    assert (put["method"], put["path"]) == ("PUT", "/notes")
    assert put["headers"]["Content-Type"].startswith("text/plain")
    assert put["body"] == "Called ann@example.com about contact 42"
    assert (missing["method"], missing["path"]) == ("GET", "/missing")

    assert_flow_run(flow_run, "sd_http", 1, "COMPLETED")
    assert steps == {
        "Get contact": "COMPLETED",
        "Create contact": "COMPLETED",
        "Send note": "COMPLETED",
        "Probe missing": "COMPLETED",
        "answer": "COMPLETED",
    }


def test_http_non_2xx_fails_the_step_by_default(prefect_api: str, catalog: Any, http_server: Any) -> None:
    http_server.routes["GET /missing"] = (404, {"error": "no such contact"})
    body, (flow_run, steps) = run(
        prefect_api, catalog, "sd_http_fail", {"base_url": http_server.url}, inspect=with_prefect(1)
    )

    assert body["status"] == "failed", body
    assert set(body) == {"status", "execution_id", "error"}
    assert body["error"]["step_name"] == "Fetch missing"
    assert "404" in body["error"]["message"]
    assert http_server.count("GET", "/missing") == 1
    assert_flow_run(flow_run, "sd_http_fail", 1, "FAILED")
    assert steps == {"Fetch missing": "FAILED"}


# code ---------------------------------------------------------------------------------
def test_code_step_output_and_step_by_name(prefect_api: str, catalog: Any) -> None:
    body, (flow_run, steps) = run(prefect_api, catalog, "sd_code", {"prices": [3, 4.5, 10]}, inspect=with_prefect(2))
    assert body["status"] == "success", body
    assert body["output"] == {
        "total": 17.5,
        "count": 3,
        "summary": "3 items, max 10",
        "whole": {"total": 17.5, "count": 3, "max": 10},
    }
    assert_flow_run(flow_run, "sd_code", 1, "COMPLETED")
    assert steps == {"Compute total": "COMPLETED", "answer": "COMPLETED"}


def test_crashing_code_step_fails_the_execution(prefect_api: str, catalog: Any) -> None:
    body, (flow_run, steps) = run(prefect_api, catalog, "sd_code_crash", inspect=with_prefect(1))
    assert body["status"] == "failed", body
    assert body["error"]["step_name"] == "Divide by zero"
    assert "ZeroDivisionError" in body["error"]["message"]
    assert_flow_run(flow_run, "sd_code_crash", 1, "FAILED")
    assert steps == {"Divide by zero": "FAILED"}


# condition ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "branch", "branch_step"),
    [(80, "hot", "tell_sales"), (50, "warm", "nurture"), (10, None, "ignore")],
)
def test_condition_branches_and_default(
    prefect_api: str, catalog: Any, score: int, branch: str | None, branch_step: str
) -> None:
    body, (flow_run, steps) = run(prefect_api, catalog, "sd_branches", {"score": score}, inspect=with_prefect(3))
    assert body["status"] == "success", body
    assert body["output"] == {"tier": branch, "by_name": branch, "continued": True}
    assert steps == {"Pick tier": "COMPLETED", branch_step: "COMPLETED", "After condition": "COMPLETED"}


def test_output_inside_a_branch_ends_the_execution(prefect_api: str, catalog: Any) -> None:
    body, (flow_run, steps) = run(
        prefect_api, catalog, "sd_branches", {"score": 99, "vip": True}, inspect=with_prefect(2)
    )
    assert body["status"] == "success", body
    assert body["output"] == {"ended_in": "vip branch", "tier": "vip"}
    assert steps == {"Pick tier": "COMPLETED", "vip_answer": "COMPLETED"}


# wait, note, running out of steps, fail -----------------------------------------------
def test_short_wait_blocks_and_reports_waited_seconds(prefect_api: str, catalog: Any) -> None:
    started = time.monotonic()
    body, _ = run(prefect_api, catalog, "sd_wait")
    assert time.monotonic() - started >= 0.2
    assert body == {"status": "success", "execution_id": body["execution_id"], "output": {"waited": 0.2}}


def test_running_out_of_steps_gives_empty_output(prefect_api: str, catalog: Any) -> None:
    body, (flow_run, steps) = run(prefect_api, catalog, "sd_no_output", inspect=with_prefect(1))
    assert body["status"] == "success"
    assert body["output"] == {}
    assert_flow_run(flow_run, "sd_no_output", 1, "COMPLETED")
    assert steps == {"Just a note": "COMPLETED"}


def test_fail_step_templated_message_and_name(prefect_api: str, catalog: Any) -> None:
    body, (flow_run, steps) = run(
        prefect_api, catalog, "sd_fail", {"company": "Acme", "budget": 1500}, inspect=with_prefect(2)
    )
    assert body == {
        "status": "failed",
        "execution_id": body["execution_id"],
        "error": {"step_name": "Reject lead", "message": "no budget for Acme (1500 EUR)"},
    }
    assert_flow_run(flow_run, "sd_fail", 1, "FAILED")
    assert "Reject lead" in flow_run.state.message
    assert steps == {"intro": "COMPLETED", "Reject lead": "FAILED"}


# action -------------------------------------------------------------------------------
def test_action_steps(prefect_api: str, catalog: Any) -> None:
    body, (_, steps) = run(prefect_api, catalog, "sd_action", {"a": 5, "who": "Ann"}, inspect=with_prefect(3))
    assert body["status"] == "success", body
    assert body["output"] == {"sum": 15, "greeting": "hello Ann"}
    assert steps == {"Add numbers": "COMPLETED", "greet": "COMPLETED", "answer": "COMPLETED"}


def test_action_raising_fails_the_execution(prefect_api: str, catalog: Any) -> None:
    body, _ = run(prefect_api, catalog, "sd_action_crash")
    assert body["status"] == "failed"
    assert body["error"]["step_name"] == "Blow up"
    assert "boom: on purpose" in body["error"]["message"]


# workflow -----------------------------------------------------------------------------
def test_workflow_step_outputs_the_called_workflows_output(prefect_api: str, catalog: Any) -> None:
    body, (_, steps) = run(prefect_api, catalog, "sd_parent", {"x": 4}, inspect=with_prefect(4))
    assert body["status"] == "success", body
    child_output = {"doubled": 10, "seen": {"x": 5, "fail": False}}
    assert body["output"] == {"child": child_output, "doubled": 10}
    assert "Call child" in steps and "answer" in steps
    assert len(steps) == 4, steps  # the called workflow's two steps are recorded too


def test_failing_called_workflow_fails_the_workflow_step(prefect_api: str, catalog: Any) -> None:
    body, _ = run(prefect_api, catalog, "sd_parent", {"x": 1, "fail": True})
    assert body["status"] == "failed", body
    assert body["error"]["step_name"] == "Call child"
    assert "child refuses 2" in body["error"]["message"]


# expressions --------------------------------------------------------------------------
def test_expression_typing(prefect_api: str, catalog: Any) -> None:
    data = {"n": 3, "flag": True, "obj": {"a": [1, {"b": None}]}}
    body, _ = run(prefect_api, catalog, "sd_typing", data)
    assert body["status"] == "success", body
    assert body["output"] == {
        "number": 3,
        "arithmetic": 6.5,
        "boolean": True,
        "comparison": True,
        "object": {"a": [1, {"b": None}]},
        "array": [3, 4],
        "none": None,
        "padded": 3,
        "mixed": "n=3",
        "two": "33",
        "literal": "plain text",
        "plain_number": 7,
        "nested": {"list": [3, "x3", {"deep": True}]},
        "execution_version": 1,
        "execution_mode": "sync",
        "execution_id": body["execution_id"],
    }


def test_invalid_input_names_the_field_and_starts_nothing(prefect_api: str, catalog: Any) -> None:
    async def go() -> list[dict[str, Any]]:
        async with Flowdeck.open(catalog=catalog, api_url=prefect_api) as engine:
            before = await engine.recent_executions(workflow_id="sd_typing")
            with pytest.raises(InvalidInput) as raised:
                await engine.run_sync("sd_typing", "latest", {"n": "three", "email": "not-an-email"})
            assert {d["field"] for d in raised.value.details} == {"n", "email"}
            assert "n:" in raised.value.message and "email:" in raised.value.message
            with pytest.raises(InvalidInput) as missing:
                await engine.run_sync("sd_typing", "latest", {})
            assert missing.value.details == [{"field": "n", "message": "is required"}]
            after = await engine.recent_executions(workflow_id="sd_typing")
            assert len(after) == len(before)
            return after

    asyncio.run(go())


# versions -----------------------------------------------------------------------------
def test_version_resolution(prefect_api: str, catalog: Any) -> None:
    def version_of(workflow_id: str, version: str | int = "latest", allow_draft: bool = False) -> Any:
        body, _ = run(prefect_api, catalog, workflow_id, version=version, allow_draft=allow_draft)
        assert body["status"] == "success", body
        return body["output"]

    assert version_of("sd_ver") == {"version": 2, "status": "live"}
    assert version_of("sd_pub") == {"version": 2, "status": "published"}
    assert version_of("sd_ver", 1) == {"version": 1, "status": "published"}
    assert version_of("sd_ver", "3", allow_draft=True) == {"version": 3, "status": "draft"}
    with pytest.raises(NotRunnable):
        catalog.resolve("sd_draft", "latest", allow_draft=True)
    with pytest.raises(NotRunnable):
        catalog.resolve("sd_ver", 3, allow_draft=False)
    with pytest.raises(UnknownVersion, match="has no version 9"):
        catalog.resolve("sd_ver", 9, allow_draft=True)
    with pytest.raises(UnknownWorkflow, match="unknown workflow 'sd_nope'"):
        catalog.resolve("sd_nope", "latest", allow_draft=True)


# the sync limit -----------------------------------------------------------------------
def timed_call(prefect_api: str, catalog: Any, workflow_id: str) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """The body, how long the sync call took to answer, and the status polled right after."""

    async def go() -> tuple[dict[str, Any], float, dict[str, Any]]:
        async with Flowdeck.open(catalog=catalog, api_url=prefect_api) as engine:
            started = time.monotonic()
            call = await engine.run_sync(workflow_id, "latest", {})
            elapsed = time.monotonic() - started
            await call.finish()
            return call.body, elapsed, await engine.status(call.execution_id)

    return asyncio.run(go())


def test_wait_past_the_sync_limit_answers_waiting(prefect_api: str, catalog: Any) -> None:
    before = datetime.now(UTC)
    body, elapsed, polled = timed_call(prefect_api, catalog, "sd_limit_wait")
    assert elapsed < 2.8, elapsed  # at the 1 s limit, not after the 3 s wait
    assert set(body) == {"status", "execution_id", "resume_at"}, body
    assert body["status"] == "waiting"
    assert re.match(EXEC_ID, body["execution_id"])
    resume_at = datetime.fromisoformat(body["resume_at"])
    assert 2.5 <= (resume_at - before).total_seconds() <= 4.0, (before, resume_at)
    assert polled["status"] == "waiting"
    assert datetime.fromisoformat(polled["resume_at"]) == resume_at


def test_long_code_step_past_the_sync_limit_answers_running(prefect_api: str, catalog: Any) -> None:
    body, elapsed, polled = timed_call(prefect_api, catalog, "sd_limit_code")
    assert set(body) == {"status", "execution_id"}, body
    assert body["status"] == "running"
    assert re.match(EXEC_ID, body["execution_id"])
    assert 0.95 <= elapsed < 3.5, elapsed  # at the 1 s limit, not after the 4 s step
    # handed off to async mode: no worker here, so it waits to be claimed, never "success"
    assert polled["status"] in ("pending", "running"), polled


@pytest.mark.parametrize("workflow_id", ["sd_limit_wait", "sd_limit_code"])
def test_handed_off_step_is_not_shown_as_failed_in_prefect(prefect_api: str, catalog: Any, workflow_id: str) -> None:
    body, _, _ = timed_call(prefect_api, catalog, workflow_id)
    assert body["status"] in ("waiting", "running"), body

    async def go() -> dict[str, str]:
        async with Flowdeck.open(catalog=catalog, api_url=prefect_api) as engine:
            return (await prefect_view(engine, body["execution_id"], 1, timeout=3))[1]

    steps = asyncio.run(go())
    assert "FAILED" not in steps.values(), steps


def test_status_after_running_hand_off_agrees_with_the_sync_answer(prefect_api: str, catalog: Any) -> None:
    body, _, polled = timed_call(prefect_api, catalog, "sd_limit_code")
    assert body["status"] == "running", body
    assert (polled["status"], polled["current_step"]) == ("running", "Slow code")


# status -------------------------------------------------------------------------------
def test_status_finds_sync_executions(prefect_api: str, catalog: Any) -> None:
    async def status(engine: Flowdeck, call: Any) -> dict[str, Any]:
        return await engine.status(call.execution_id)

    body, polled = run(prefect_api, catalog, "sd_code", {"prices": [1, 2]}, inspect=status)
    assert polled["status"] == "success"
    assert polled["execution_id"] == body["execution_id"]
    assert (polled["workflow_id"], polled["workflow_version"], polled["mode"]) == ("sd_code", 1, "sync")
    assert polled["output"] == body["output"]

    body, polled = run(prefect_api, catalog, "sd_fail", {"company": "Initech", "budget": 0}, inspect=status)
    assert polled["status"] == "failed"
    assert polled["error"] == body["error"] == {"step_name": "Reject lead", "message": "no budget for Initech (0 EUR)"}
