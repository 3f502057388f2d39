"""Attacks on the definition loader: files that exhaust it, calls that never end, values
that overflow at run time, input schemas that fetch or loop. Each is an error at
PATH:LINE:COL, fast, and never stops the other workflows of the directory from loading."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.cli import run_cli

from flowdeck.definition.catalog import load_catalog
from flowdeck.definition.durations import MAX_DURATION_SECONDS
from flowdeck.definition.validation import validate_paths
from flowdeck.definition.yaml_bounds import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_NUMBER_CHARS

GOOD = "id: good\nversion: 1\nstatus: published\nsteps:\n  - {id: done, type: output, fields: {ok: true}}\n"

BILLION_LAUGHS = """id: laughs
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
steps: [{id: x, type: output}]
"""


def problems_of(tmp_path: Path, name: str, text: str) -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    return [f"{p.line}:{p.col}: {p.severity}: {p.message}" for p in validate_paths([path])]


def only_error(found: list[str], *fragments: str) -> str:
    errors = [each for each in found if ": error: " in each]
    assert len(errors) == 1, found
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_billion_laughs_is_an_error_in_milliseconds(tmp_path):
    started = time.monotonic()
    found = problems_of(tmp_path, "laughs.yaml", BILLION_LAUGHS)
    assert time.monotonic() - started < 2
    assert only_error(found, f"expands to more than {MAX_NODES:,} values").startswith("8:")


def test_aliases_below_the_bound_still_work(tmp_path):
    text = "id: merge\nversion: 1\nstatus: published\n"
    text += "steps:\n  - &first {id: a, type: note, text: hi}\n  - {<<: *first, id: b}\n"
    assert problems_of(tmp_path, "merge.yaml", text) == []


def test_twenty_thousand_nested_flow_sequences(tmp_path):
    text = "id: deep\nversion: 1\nsteps: " + "[" * 20000 + "]" * 20000 + "\n"
    error = only_error(problems_of(tmp_path, "deep.yaml", text), f"nests deeper than {MAX_DEPTH} levels")
    assert error.startswith(f"3:{8 + MAX_DEPTH - 1}:")  # at the bracket that crosses the bound


def test_three_thousand_levels_of_block_nesting(tmp_path):
    text = "id: nest\nversion: 1\nsteps: [{id: a, type: output}]\nx:\n" + "".join(
        " " * (level + 1) + "k:\n" for level in range(3000)
    )
    if len(text) > MAX_FILE_BYTES:
        text = "id: nest\nversion: 1\nx: " + "{k: " * 3000 + "1" + "}" * 3000 + "\n"
    only_error(problems_of(tmp_path, "nest.yaml", text), f"nests deeper than {MAX_DEPTH} levels")


def test_nesting_at_the_bound_is_accepted(tmp_path):
    # the root mapping, steps and the step: 3 levels, then fields and its nested mappings
    inner = "{a: " * (MAX_DEPTH - 3) + "1" + "}" * (MAX_DEPTH - 3)
    text = f"id: edge\nversion: 1\nsteps:\n  - {{id: done, type: output, fields: {inner}}}\n"
    assert [each for each in problems_of(tmp_path, "edge.yaml", text) if "nests deeper" in each] == []
    deeper = text.replace("{a: 1}", "{a: {a: 1}}")
    only_error(problems_of(tmp_path, "edge.yaml", deeper), "nests deeper")


def test_a_five_thousand_digit_version(tmp_path):
    text = f"id: big\nversion: {'9' * 5000}\nsteps: [{{id: x, type: output}}]\n"
    only_error(problems_of(tmp_path, "big.yaml", text), "a number of 5,000 characters", "2:10:")
    at_bound = f"id: big\nversion: 1\nsteps: [{{id: x, type: output, fields: {{n: {'1' * MAX_NUMBER_CHARS}}}}}]\n"
    assert not [each for each in problems_of(tmp_path, "big.yaml", at_bound) if "characters" in each]


def test_a_file_over_the_size_bound(tmp_path):
    text = GOOD + "# " + "x" * MAX_FILE_BYTES + "\n"
    only_error(problems_of(tmp_path, "huge.yaml", text), f"over the limit of {MAX_FILE_BYTES // 1024} KiB", "1:1:")


def test_one_broken_file_never_breaks_the_others(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    (tmp_path / "deep.yaml").write_text("id: deep\nversion: 1\nsteps: " + "[" * 20000 + "]" * 20000 + "\n")
    (tmp_path / "big.yaml").write_text(f"id: big\nversion: {'9' * 5000}\nsteps: []\n")
    catalog = load_catalog(tmp_path)
    assert catalog.resolve("good", "latest", allow_draft=False).id == "good"
    assert {Path(p.path).name for p in catalog.problems if p.is_error} == {"laughs.yaml", "deep.yaml", "big.yaml"}
    listed = run_cli("list", env={"FLOWDECK_DEFINITIONS": str(tmp_path)}, timeout=60)
    assert "Traceback" not in listed.stdout + listed.stderr
    assert "good" in listed.stdout


def test_two_workflows_calling_each_other_are_an_error_naming_the_cycle(tmp_path):
    (tmp_path / "ping.yaml").write_text(
        "id: ping\nversion: 1\nstatus: published\nsteps:\n  - {id: call, type: workflow, workflow_id: pong}\n"
    )
    (tmp_path / "pong.yaml").write_text(
        "id: pong\nversion: 1\nstatus: published\nsteps:\n  - {id: call, type: workflow, workflow_id: ping}\n"
    )
    found = [f"{Path(p.path).name}:{p.line}:{p.col}: {p.message}" for p in validate_paths([tmp_path])]
    assert len(found) == 2
    cycle = "this step closes a cycle of workflow calls"
    assert found[0].startswith(f"ping.yaml:5:45: {cycle}: ping v1 -> pong v1 -> ping v1")
    assert found[1].startswith(f"pong.yaml:5:45: {cycle}: pong v1 -> ping v1 -> pong v1")


def test_a_self_call_is_an_error(tmp_path):
    text = "id: selfie\nversion: 1\nstatus: published\nsteps:\n  - {id: again, type: workflow, workflow_id: selfie}\n"
    only_error(problems_of(tmp_path, "selfie.yaml", text), "calls its own workflow: selfie v1 -> selfie v1", "5:46:")


def test_a_call_chain_without_a_cycle_is_fine(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "id: first\nversion: 1\nstatus: published\nsteps:\n  - {id: call, type: workflow, workflow_id: second}\n"
    )
    (tmp_path / "b.yaml").write_text(GOOD.replace("id: good", "id: second"))
    assert validate_paths([tmp_path]) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("timeout: 99999999999999999999d", "4:10:"),
        ("retries: {max_retries: 1, delay: 400d}", "4:34:"),
        (f"timeout: {MAX_DURATION_SECONDS + 1}", "4:10:"),
    ],
)
def test_durations_have_a_maximum(tmp_path, line, expected):
    text = f"id: slow\nversion: 1\nstatus: draft\n{line}\nsteps: [{{id: done, type: output}}]\n"
    error = only_error(problems_of(tmp_path, "slow.yaml", text))
    assert error.startswith(expected) and "longer than 366 days" in error, error


def test_a_wait_over_the_maximum_and_at_it(tmp_path):
    base = "id: waits\nversion: 1\ntimeout: 366d\nsteps:\n  - {{id: w, type: wait, duration: {d}}}\n"
    only_error(problems_of(tmp_path, "w.yaml", base.format(d="{value: 367, unit: days}")), "longer than 366 days")
    assert not [e for e in problems_of(tmp_path, "w.yaml", base.format(d="366d")) if ": error: " in e]


def test_cron_has_exactly_five_fields(tmp_path):
    text = (
        "id: tick\nversion: 1\nstatus: live\ntriggers:\n  - {type: schedule, cron: '* * * * * *'}\n"
        "steps: [{id: done, type: output}]\n"
    )
    only_error(problems_of(tmp_path, "tick.yaml", text), "exactly five fields", "5:28:")
    assert problems_of(tmp_path, "tick.yaml", text.replace("'* * * * * *'", "'*/5 * * * *'")) == []


def test_input_schema_ref_is_never_fetched(tmp_path, http_server):
    text = (
        "id: fetcher\nversion: 1\ninput:\n  type: object\n  properties:\n"
        f"    a: {{$ref: '{http_server.url}/schema.json'}}\nsteps: [{{id: done, type: output}}]\n"
    )
    only_error(problems_of(tmp_path, "fetcher.yaml", text), "points outside the input schema", "6:15:")
    assert http_server.calls == []


def test_input_schema_ref_loop_is_an_error(tmp_path):
    text = (
        "id: loop\nversion: 1\ninput:\n  type: object\n  properties:\n    a: {$ref: '#/$defs/x'}\n"
        "  $defs:\n    x: {$ref: '#/$defs/y'}\n    y: {allOf: [{$ref: '#/$defs/x'}]}\n"
        "steps: [{id: done, type: output}]\n"
    )
    only_error(problems_of(tmp_path, "loop.yaml", text), "$ref loop #/$defs/x -> #/$defs/y", "8:15:")
    recursive_tree = text.replace("y: {allOf: [{$ref: '#/$defs/x'}]}", "y: {items: {$ref: '#/$defs/y'}}")
    assert problems_of(tmp_path, "loop.yaml", recursive_tree) == []  # recursion that reads input is fine


def test_input_schema_pattern_that_backtracks_is_linear_and_lookaround_refused(tmp_path):
    text = (
        "id: pat\nversion: 1\ninput:\n  type: object\n  properties:\n"
        "    s: {type: string, pattern: '(?<=x)y'}\nsteps: [{id: done, type: output}]\n"
    )
    only_error(problems_of(tmp_path, "pat.yaml", text), "lookahead and lookbehind are not supported", "6:32:")


def test_empty_steps_is_an_error(tmp_path):
    only_error(problems_of(tmp_path, "empty.yaml", "id: empty\nversion: 1\nsteps: []\n"), "'steps'", "at least 1")


def test_a_cycle_that_reaches_the_engine_fails_its_step_not_the_process():
    """Validation refuses cycles; the engine still bounds call depth (a definition could
    change between validation and run), so a cycle is a step failure, not a RecursionError."""
    import asyncio

    from flowdeck.definition.catalog import build_definition
    from flowdeck.definition.validation import check_text
    from flowdeck.runtime.interpreter import MAX_CALL_DEPTH, Run

    text = "id: selfie\nversion: 1\nstatus: published\nsteps:\n  - {id: again, type: workflow, workflow_id: selfie}\n"
    definition = build_definition(check_text(text, "selfie.yaml"))
    run = Run(
        definition=definition, execution_id="exec_1", mode="sync", input={}, resolve_workflow=lambda *_: definition
    )
    outcome = asyncio.run(run.execute())
    assert outcome.status == "failed"
    assert f"workflow calls nest deeper than {MAX_CALL_DEPTH} levels" in str(outcome.error)


def test_file_size_at_the_bound_is_accepted(tmp_path):
    text = GOOD + "# "
    text += "x" * (MAX_FILE_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert problems_of(tmp_path, "edge.yaml", text) == []


def test_expanded_values_just_under_and_over_the_bound(tmp_path):
    def with_aliases(copies: int) -> str:
        items = ", ".join(["1"] * 999)
        refs = ", ".join(["*a"] * copies)
        return (
            f"id: many\nversion: 1\nstatus: published\nsteps:\n"
            f"  - {{id: done, type: output, fields: {{a: &a [{items}], b: [{refs}]}}}}\n"
        )

    under = problems_of(tmp_path, "many.yaml", with_aliases(MAX_NODES // 1000 - 2))  # ~98,000 values
    assert not [each for each in under if "expands to more than" in each]
    only_error(problems_of(tmp_path, "many.yaml", with_aliases(MAX_NODES // 1000 + 1)), "expands to more than")


def test_retry_policy_is_bounded_and_its_waits_never_overflow(tmp_path):
    from flowdeck.definition.model import RetryPolicy

    base = "id: again\nversion: 1\nretries: {{max_retries: {n}, delay: 1d, backoff: {b}}}\n"
    base += "steps: [{{id: d, type: output}}]\n"
    assert problems_of(tmp_path, "r.yaml", base.format(n=100, b=10)) == []
    only_error(problems_of(tmp_path, "r.yaml", base.format(n=101, b=10)), "3:24:", "at most 100 (got 101)")
    only_error(problems_of(tmp_path, "r.yaml", base.format(n=100, b=11)), "3:49:", "at most 10 (got 11)")
    policy = RetryPolicy(max_retries=100, delay=86400.0, backoff=10.0)
    assert policy.delay_before(2) == 86400.0
    assert policy.delay_before(101) == MAX_DURATION_SECONDS  # 10**99 days, clamped, no OverflowError


def test_sync_timeout_has_a_maximum(tmp_path):
    base = "id: waits\nversion: 1\nsync_timeout: {t}\nsteps: [{{id: d, type: output}}]\n"
    assert problems_of(tmp_path, "s.yaml", base.format(t="15m")) == []
    only_error(problems_of(tmp_path, "s.yaml", base.format(t="901s")), "3:15:", "longer than 15m")
