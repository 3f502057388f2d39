"""Red team on the code step's reply: what a hostile step hands back to the engine.

The child program is trusted only as far as the code it runs lets it be: the code can write
any bytes to the reply pipe (fd 3) and exit. What the engine takes from the reply joins the
execution's context, its journal and its records in Prefect, so it must meet the same
bounds as an input (`flows/runtime/input_bounds.py`): a lone surrogate, `NaN`, an integer
past 64 bits or JSON nested past 64 levels is what broke Prefect's reads for inputs.
Before the fix each of these came back as the step's output (and 5,000 levels of JSON on
fd 3 raised RecursionError out of `run_code`: a traceback, not a step error).
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from sandbox_calls import run

from flowdeck.errors import StepError
from flowdeck.runtime.steps.code import run_code

RETURNED = {
    "a lone surrogate in a value": "def run(ctx):\n    return {'s': '\\ud800'}\n",
    "a lone surrogate in a key": "def run(ctx):\n    return {'k\\udfff': 1}\n",
    "900 levels of nesting": "def run(ctx):\n    v = []\n    for _ in range(900):\n        v = [v]\n    return v\n",
    "an integer past 64 bits": "def run(ctx):\n    return 2**100\n",
}

FORGED = {  # written straight to the reply pipe, past the child's own checks
    "NaN and Infinity": b'{"value": [NaN, Infinity, -Infinity], "logs": ""}',
    "1e999": b'{"value": 1e999, "logs": ""}',
    "5,000 levels of nesting": b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b', "logs": ""}',
    "a 5,000-digit number": b'{"value": 1' + b"0" * 5000 + b', "logs": ""}',
    "not JSON at all": b'{"value": ',
}


@pytest.mark.parametrize("what", list(RETURNED))
def test_a_returned_value_prefect_cannot_hold_is_a_step_error(what: str) -> None:
    with pytest.raises(StepError) as failure:
        run(RETURNED[what])
    assert "returned" in failure.value.message or "reply" in failure.value.message, failure.value.message


@pytest.mark.parametrize("what", list(FORGED))
def test_a_forged_reply_on_the_reply_pipe_is_a_step_error(what: str) -> None:
    source = f"import os\ndef run(ctx):\n    os.write(3, {FORGED[what]!r})\n    os._exit(0)\n"
    with pytest.raises(StepError):
        run(source)


def test_a_value_at_the_bounds_still_comes_back() -> None:
    source = """
    def run(ctx):
        v = "leaf"
        for _ in range(63):
            v = [v]
        return {"deep": v, "big": 2**64 - 1, "small": -(2**63), "text": "\\u00e9\\U0001f600"}
    """
    value = run(source)
    assert value["big"] == 2**64 - 1 and value["small"] == -(2**63) and value["text"] == "\u00e9\U0001f600"
    assert json.dumps(value).count("[") == 63


def test_lone_surrogates_in_logs_and_errors_become_text() -> None:
    printed: list[str] = []
    source = "def run(ctx):\n    print('\\ud800 printed')\n    return 1\n"
    assert asyncio.run(run_code(source, {}, timeout=10, memory_mb=128, on_logs=printed.append)) == 1
    assert printed and "printed" in printed[0]
    printed[0].encode("utf-8")  # valid Unicode text: any log store takes it
    with pytest.raises(StepError) as failure:
        run("def run(ctx):\n    raise ValueError('\\udcff boom')\n")
    assert "boom" in failure.value.message
    failure.value.message.encode("utf-8")


def test_a_forged_reply_with_a_huge_log_text_is_cut() -> None:
    source = textwrap.dedent(
        """
        import json, os
        def run(ctx):
            os.write(3, json.dumps({"value": 1, "logs": "x" * 300_000}).encode())
            os._exit(0)
        """
    )
    printed: list[str] = []
    assert asyncio.run(run_code(source, {}, timeout=10, memory_mb=128, on_logs=printed.append)) == 1
    assert len(printed[0]) < 70_000, len(printed[0])
