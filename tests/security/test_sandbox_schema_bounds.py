"""The bounds of a code step's sandbox in the definition: `timeout` at most 5m and
`memory_mb` from 16 to 2048, reported as PATH:LINE:COL problems (issue 12); the engine
refuses values past them even when no validation ran."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from flowdeck.definition.model import MAX_CODE_MEMORY_MB, MAX_CODE_TIMEOUT
from flowdeck.definition.validation import Problem, check_text
from flowdeck.errors import StepError
from flowdeck.runtime.steps.code import run_code


def problems(yaml_text: str, path: str = "wf.yaml") -> list[str]:
    checked = check_text(textwrap.dedent(yaml_text).lstrip("\n"), path)
    return [str(problem) for problem in sorted(checked.problems, key=Problem.sort_key)]


def code_step(extra: str) -> str:
    return f"""
    id: demo
    version: 1
    steps:
      - id: crunch
        type: code
        {extra}
        code: |
          def run(ctx):
              return 1
    """


def test_the_maxima_are_the_documented_ones() -> None:
    assert (MAX_CODE_TIMEOUT, MAX_CODE_MEMORY_MB) == (300.0, 2048)


@pytest.mark.parametrize("value", ["5m", "300", "300s", "0.5s"])
def test_a_timeout_up_to_five_minutes_is_accepted(value: str) -> None:
    assert problems(code_step(f"timeout: {value}")) == []


@pytest.mark.parametrize(("value", "shown"), [("301", "301s"), ("10m", "10m"), ("2h", "2h"), ("300001ms", "300.001s")])
def test_a_longer_timeout_is_an_error_at_its_value(value: str, shown: str) -> None:
    assert problems(code_step(f"timeout: {value}")) == [
        f"wf.yaml:6:14: error: the timeout of code step 'crunch' is {shown}, longer than the 5m a code step may "
        "run; do longer work in a service called by an http step"
    ]


def test_memory_above_the_maximum_is_an_error_at_its_value() -> None:
    assert problems(code_step("memory_mb: 2049")) == [
        "wf.yaml:6:16: error: 'memory_mb' in code step 'crunch' must be at most 2048 (got 2049)"
    ]
    assert problems(code_step("memory_mb: 2048")) == []
    assert problems(code_step("memory_mb: 15")) == [
        "wf.yaml:6:16: error: 'memory_mb' in code step 'crunch' must be at least 16 (got 15)"
    ]


def test_the_schema_states_the_memory_maximum() -> None:
    import json
    from pathlib import Path

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "workflow.schema.json").read_text())
    memory = schema["$defs"]["codeStep"]["properties"]["memory_mb"]
    assert (memory["minimum"], memory["maximum"]) == (16, MAX_CODE_MEMORY_MB)


@pytest.mark.parametrize(("timeout", "memory_mb"), [(301, 256), (0, 256), (10, 4096), (10, 8)])
def test_the_engine_refuses_values_past_the_bounds(timeout: float, memory_mb: int) -> None:
    with pytest.raises(StepError, match="must be within"):
        asyncio.run(run_code("def run(ctx):\n    return 1\n", {}, timeout=timeout, memory_mb=memory_mb))
