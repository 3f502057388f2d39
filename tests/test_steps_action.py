"""The action step: calling "package.module:function" references."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flowdeck.errors import StepError
from flowdeck.runtime.steps.action import check_action_reference, run_action

FIXTURE = "actions_fixture"  # tests/ is on sys.path (pytest prepends the folder of rootless test modules)


def run(uses: str, **kwargs):
    return asyncio.run(run_action(uses, kwargs))


def test_a_sync_function_runs_in_a_thread_with_its_arguments():
    result = run(f"{FIXTURE}:add", a=2, b=3)
    assert result["sum"] == 5
    assert result["thread"] != threading.main_thread().name


def test_a_coroutine_function_is_awaited():
    assert run(f"{FIXTURE}:greet", name="Ann") == "hello Ann"


def test_the_result_is_plain_json():
    assert run(f"{FIXTURE}:pair") == [1, "two"]


def test_a_result_that_is_not_json_fails_the_step():
    with pytest.raises(StepError, match="not JSON-serialisable"):
        run(f"{FIXTURE}:not_json")


def test_an_exception_names_the_action_type_and_message():
    with pytest.raises(StepError, match=r"actions_fixture:explode raised RuntimeError: boom: now"):
        run(f"{FIXTURE}:explode", reason="now")


def test_wrong_arguments_say_to_check_with():
    with pytest.raises(StepError, match="does not accept these arguments"):
        run(f"{FIXTURE}:add", c=1)


def test_a_type_error_inside_the_action_is_reported_as_raised():
    with pytest.raises(StepError, match="raised TypeError"):
        run(f"{FIXTURE}:wrong_type")


@pytest.mark.parametrize(
    ("uses", "message"),
    [
        ("no_such_module_here:f", "cannot import module .no_such_module_here."),
        (f"{FIXTURE}:missing", "has no attribute 'missing'"),
        (f"{FIXTURE}:NOT_A_FUNCTION", "is not a function"),
        ("no colon here", "must name a function"),
    ],
)
def test_bad_references_fail_with_a_clear_message(uses, message):
    with pytest.raises(StepError, match=message):
        run(uses)


@pytest.mark.parametrize("uses", ["pkg.mod:func", "mod:f", "a.b.c:_private"])
def test_check_action_reference_accepts_module_and_function(uses):
    assert check_action_reference(uses) is None


@pytest.mark.parametrize("uses", ["", "pkg.mod", "pkg.mod:", ":f", "pkg..mod:f", "pkg.mod:f.g", "1pkg:f", "pkg/mod:f"])
def test_check_action_reference_rejects_other_shapes(uses):
    assert check_action_reference(uses)
