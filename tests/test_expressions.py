"""JSONata templating: types kept, text rendering, references, bounds, speed."""

from __future__ import annotations

import json
import threading
import time

import pytest

from flowdeck.definition.expressions import (
    check_syntax,
    check_template,
    evaluate,
    is_truthy,
    referenced_roots,
    render,
    template_expressions,
)
from flowdeck.errors import ExpressionError

CTX = {
    "input": {
        "x": 3,
        "ratio": 0.5,
        "name": "Ann",
        "flag": True,
        "nothing": None,
        "items": [{"price": 5, "sku": "a"}, {"price": 1, "sku": "b"}],
    },
    "trigger": {"type": "api", "min": 2},
    "execution": {"id": "ex-1", "workflow_id": "wf", "version": 1, "mode": "sync"},
    "lookup": {"body": {"id": 42}},
    "Lookup contact": {"body": {"id": 42}},
}


# --------------------------------------------------------------------------- render


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.x }}", 3),
        ("  {{ input.x }}  ", 3),
        ("{{ input.ratio }}", 0.5),
        ("{{ input.flag }}", True),
        ("{{ input.nothing }}", None),
        ("{{ input.missing }}", None),
        ("{{ input.items[0] }}", {"price": 5, "sku": "a"}),
        ("{{ input.items.sku }}", ["a", "b"]),
        ("{{ [input.x] }}", [3]),
        ("{{ 6 / 2 }}", 3),
        ('{{ {"a": {"b": input.x}} }}', {"a": {"b": 3}}),
        ("{{ `Lookup contact`.body.id }}", 42),
        ("{{ $$.input.name }}", "Ann"),
    ],
)
def test_a_pure_template_keeps_the_json_type(template, expected):
    result = render(template, CTX)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{ input.name }}!", "Hi Ann!"),
        ("n={{ input.x }}", "n=3"),
        ("n={{ 3.0 }}", "n=3"),
        ("r={{ 0.1 + 0.2 }}", "r=0.3"),
        ("f={{ input.flag }}", "f=true"),
        ("[{{ input.nothing }}][{{ input.missing }}]", "[][]"),
        ("o={{ input.items[0] }}", 'o={"price":5,"sku":"a"}'),
        ("a={{ input.items.price }}", "a=[5,1]"),
        ("{{ input.x }}{{ input.x }}", "33"),
        ("{{ input.x }} and {{ input.name }}", "3 and Ann"),
    ],
)
def test_text_mixed_with_expressions_becomes_a_string(template, expected):
    assert render(template, CTX) == expected


def test_render_walks_dicts_and_lists_and_leaves_the_rest_alone():
    value = {"to": "{{ input.name }}", "list": ["{{ input.x }}", 7, None, "plain"], "{{ key }}": False}
    assert render(value, CTX) == {"to": "Ann", "list": [3, 7, None, "plain"], "{{ key }}": False}


def test_a_string_without_braces_is_returned_as_it_is():
    text = "no templates here, not even $x or {single}"
    assert render(text, CTX) is text


def test_results_are_plain_json_and_do_not_alias_the_context():
    result = render({"items": "{{ input.items }}", "range": "{{ [1..3] }}"}, CTX)
    assert json.loads(json.dumps(result)) == result
    assert type(result["range"]) is list and result["range"] == [1, 2, 3]
    result["items"][0]["price"] = 999
    assert CTX["input"]["items"][0]["price"] == 5


def test_closing_braces_inside_an_expression_do_not_end_it():
    assert render('{{ {"a": {"b": "}}"}} }}', CTX) == {"a": {"b": "}}"}}


def test_now_is_the_time_of_each_evaluation_not_of_compilation():
    first = render("{{ $millis() }}", CTX)
    time.sleep(0.02)
    second = render("{{ $millis() }}", CTX)
    assert second - first >= 15


def test_concurrent_threads_get_their_own_results():
    errors: list[str] = []

    def worker(number: int) -> None:
        for _ in range(200):
            if render("{{ input.x * 2 }}", {"input": {"x": number}}) != number * 2:
                errors.append(f"thread {number} saw another thread's input")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --------------------------------------------------------------------------- evaluate


def test_evaluate_accepts_braces_or_a_bare_expression():
    assert evaluate("{{ input.x > 1 }}", CTX) is True
    assert evaluate("input.x > 5", CTX) is False
    assert evaluate("input.missing", CTX) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (2, True),
        ("", False),
        ("no", True),
        ([], False),
        ([0, ""], False),
        ([0, 1], True),
        ({}, False),
        ({"a": 0}, True),
    ],
)
def test_is_truthy_follows_jsonata_boolean(value, expected):
    assert is_truthy(value) is expected


def test_is_truthy_agrees_with_jsonata_itself():
    for literal in ["0", "1", '""', '"x"', "[]", "[0]", "[0, 1]", "{}", '{"a": 1}', "null", "false"]:
        assert is_truthy(evaluate(literal, CTX)) is evaluate(f"$boolean({literal})", CTX), literal


# --------------------------------------------------------------------------- errors


def test_a_parse_error_names_the_expression():
    with pytest.raises(ExpressionError, match=r"cannot parse expression `input\.x \+`"):
        render("{{ input.x + }}", CTX)


def test_an_evaluation_error_names_the_expression():
    with pytest.raises(ExpressionError, match=r"`input.name \+ 1`"):
        evaluate("input.name + 1", CTX)


def test_an_unclosed_template_is_an_error():
    with pytest.raises(ExpressionError, match="never closed"):
        render("Hello {{ input.name", CTX)
    assert "never closed" in check_template("Hello {{ input.name")
    assert check_template("Hello {{ input.name }}") is None


def test_check_syntax():
    assert check_syntax("input.x > 1") is None
    assert check_syntax("{{ input.x > 1 }}") is None
    message = check_syntax("input.x >")
    assert message and "input.x >" in message
    assert check_syntax("(") is not None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("($f := function($n){ $f($n + 1) }; $f(0))", "ran longer"),
        ("($f := function($n){ 1 + $f($n + 1) }; $f(0))", "nests deeper"),
        ("[1..100000000]", "range"),
        ('$reduce([1..40], function($a, $b){ $a & $a }, "x")', "string longer"),
    ],
)
def test_runaway_expressions_are_stopped_quickly(expression, reason):
    started = time.perf_counter()
    with pytest.raises(ExpressionError, match=reason):
        evaluate(expression, CTX, timeout=0.5)
    assert time.perf_counter() - started < 2


def test_a_deadline_is_per_call_not_per_compiled_expression():
    # the library's own Timebox starts its clock at compile time; a cached expression
    # must still run long after it was first compiled
    expression = "$count([1..1000].($ * 2))"
    assert evaluate(expression, CTX, timeout=0.3) == 1000
    time.sleep(0.4)
    assert evaluate(expression, CTX, timeout=0.3) == 1000


def test_no_python_is_reachable():
    with pytest.raises(ExpressionError):
        evaluate("$eval(\"__import__('os')\")", CTX)
    assert evaluate("$.__class__", CTX) is None


# --------------------------------------------------------------------------- validation helpers


def test_template_expressions_walks_nested_values():
    value = {"a": ["hi {{ input.name }} and {{ lookup.body }}", {"q": '{{ {"x": 1} }}'}], "n": 3}
    assert template_expressions(value) == ["input.name", "lookup.body", '{"x": 1}']
    assert template_expressions("plain") == []


@pytest.mark.parametrize(
    ("expression", "roots"),
    [
        ("`Lookup contact`.body.id & input.x", {"Lookup contact", "input"}),
        ("input.items[price > $$.trigger.min].sku", {"input", "trigger"}),
        ("$.input.x", {"input"}),
        ("{{ -input.x }}", {"input"}),
        ('{"a": input.x, "b": [lookup.body]}', {"input", "lookup"}),
        ("($f := function($n){ $n + trigger.min }; $f(input.x))", {"input", "trigger"}),
        ("$x.y", set()),
        ("input.items{sku: price}", {"input"}),
        ("input.items^(>price).sku", {"input"}),
        ("$sum(input.items.price) ~> $string()", {"input"}),
        ("input.x > 1 ? lookup.body : execution.id", {"input", "lookup", "execution"}),
    ],
)
def test_referenced_roots(expression, roots):
    assert referenced_roots(expression) == roots


# --------------------------------------------------------------------------- speed


def test_a_simple_path_costs_well_under_a_millisecond():
    render("{{ input.items[0].sku }}", CTX)
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        render("{{ input.items[0].sku }}", CTX)
    per_call = (time.perf_counter() - started) / runs
    assert per_call < 0.0005, f"{per_call * 1e6:.0f} µs per render"


def test_an_empty_expression_says_so():
    with pytest.raises(ExpressionError, match="empty"):
        evaluate("  ", CTX)
    with pytest.raises(ExpressionError, match="empty"):
        render("a {{ }} b", CTX)


def test_a_recursive_function_with_a_base_case_may_recurse_a_few_hundred_levels():
    assert evaluate("($f := function($n){ $n <= 0 ? 0 : 1 + $f($n - 1) }; $f(200))", CTX) == 200
