"""Attacks on the expression engine: backtracking regexes, huge results, long evaluations.

Each test is named after what it attacks; each failed on the tree before the bounds
(the ReDoS took 24 s, `$pad` 5.4 s and 1.9 GB).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from flowdeck.definition.expression_limits import MAX_STEPS, MAX_STRING
from flowdeck.definition.expressions import check_syntax, evaluate, evaluate_async, render, render_async
from flowdeck.errors import ExpressionError

REDOS_INPUT = {"input": {"s": "a" * 30 + "!"}}


def timed(call):
    started = time.monotonic()
    try:
        result = call()
    except ExpressionError as error:
        result = error
    return result, time.monotonic() - started


def test_catastrophic_backtracking_regex_in_match_is_linear():
    result, seconds = timed(lambda: render("{{ $match(input.s, /^(a+)+$/) }}", REDOS_INPUT))
    assert result is None and seconds < 0.05
    long_input = {"input": {"s": "a" * 100_000 + "!"}}
    for expression in ("$contains(input.s, /^(a+)+$/)", "$replace(input.s, /(a|aa)+$/, 'x')", "input.s ~> /(a*)*b/"):
        _, seconds = timed(lambda expression=expression: evaluate(expression, long_input))
        assert seconds < 0.5, expression


def test_regex_functions_keep_their_meaning_under_re2():
    assert render('{{ $replace("banana", /(a)(n)/, "$2$1") }}', {}) == "bnanaa"
    assert render('{{ $replace("banana", "a", "[$0]") }}', {}) == "b[a]n[a]n[a]"
    assert render('{{ $replace("banana", "a", "o", 2) }}', {}) == "bonona"
    assert render('{{ $split("a1b22c", /[0-9]+/) }}', {}) == ["a", "b", "c"]
    assert render('{{ $contains("Hello", /L+/i) }}', {}) is True
    assert render('{{ $match("x-aa-aaa", /a+/).match }}', {}) == ["aa", "aaa"]


def test_lookaround_and_backreferences_are_refused_when_parsed():
    for pattern in ("/(?=b)/", "/(?<!a)b/", "/(a)\\1/"):
        message = check_syntax(f'$match("ab", {pattern})')
        assert message is not None and "not supported" in message and "RE2" in message, message


def test_pad_to_a_billion_characters_fails_at_once():
    result, seconds = timed(lambda: render('{{ $pad("", 1000000000) }}', {}))
    assert isinstance(result, ExpressionError) and seconds < 0.05
    assert "$pad to width 1,000,000,000" in result.message and f"{MAX_STRING:,}" in result.message
    assert render(f'{{{{ $length($pad("", {MAX_STRING})) }}}}', {}) == MAX_STRING  # at the bound: fine
    with pytest.raises(ExpressionError, match="more than"):
        render(f'{{{{ $pad("", -{MAX_STRING + 1}) }}}}', {})


def test_join_and_replace_cannot_multiply_a_string():
    with pytest.raises(ExpressionError, match=r"\$join would build"):
        render('{{ $join([$pad("", 600000, "a"), $pad("", 600000, "b")]) }}', {})
    result, seconds = timed(lambda: render('{{ $replace($pad("", 900000, "a"), "a", "bb") }}', {}))
    assert isinstance(result, ExpressionError) and "$replace would build" in result.message and seconds < 1
    with pytest.raises(ExpressionError, match="string longer than"):
        render('{{ $pad("", 600000, "a") & $pad("", 600000, "b") }}', {})


def test_eval_gets_the_same_bounded_functions():
    with pytest.raises(ExpressionError):
        render('{{ $eval("$pad(\\"\\", 100000000)") }}', {})


def test_an_endless_loop_stops_at_the_time_limit_or_step_budget():
    result, seconds = timed(lambda: render("{{ $sum([1..100000].($sum([1..100000]))) }}", {}))
    assert isinstance(result, ExpressionError) and seconds < 2
    assert "longer than 1 s" in result.message or f"{MAX_STEPS:,} steps" in result.message


def test_step_budget_is_independent_of_the_clock():
    with pytest.raises(ExpressionError, match=f"more than {MAX_STEPS:,} steps"):
        render("{{ [1..100000].([1..100].($ + 1)) }}", {}, timeout=3600)


def test_async_evaluation_never_holds_the_event_loop():
    """A hostile expression on the loop: a ticker must keep ticking every few milliseconds."""

    async def scenario() -> tuple[float, object]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.001)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        try:
            outcome: object = await render_async("{{ $sum([1..100000].($sum([1..100000]))) }}", {})
        except ExpressionError as error:
            outcome = error
        task.cancel()
        return max(gaps), outcome

    worst_gap, outcome = asyncio.run(scenario())
    assert isinstance(outcome, ExpressionError)
    assert worst_gap < 0.05, f"the loop was held {worst_gap * 1000:.0f} ms"


def test_async_evaluation_gives_the_same_answers():
    ctx = {"input": {"x": 2}}
    assert asyncio.run(render_async("{{ input.x * 3 }}", ctx)) == 6
    assert asyncio.run(evaluate_async("input.x > 1", ctx)) is True
    assert asyncio.run(render_async("plain", ctx)) == "plain"


def test_distinct_is_linear_and_keeps_jsonata_equality():
    result, seconds = timed(lambda: render("{{ $count($distinct([1..100000])) }}", {}))
    assert result == 100_000 and seconds < 0.5  # the library's $distinct took 43 s, past any clock
    mixed = '{{ $distinct([1, 1.0, true, "1", {"a": 1, "b": 2}, {"b": 2, "a": 1}, [1], [1], null, null]) }}'
    assert render(mixed, {}) == [1, True, "1", {"a": 1, "b": 2}, [1], None]
