"""Red team on the expression bounds: expressions that are slow or big without a regex.

The hooks around each evaluated node see the result of a node, not the work inside one: a
path step flattens what each item gave into one array in a single C-level `extend`, so
`[1..100000].([1..100000])` (each inner range lazy, each under MAX_RANGE) grew the engine
to 1.6 GB in 1.4 s before the clock could stop it; the same with an array of the context
(`($a := input.a; $a.($a))`). Peak memory is measured in a separate process (VmHWM).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowdeck.definition.expression_limits import MAX_LIST, MAX_MEMORY_MB, MAX_RENDERED_CHARS
from flowdeck.definition.expressions import render
from flowdeck.errors import ExpressionError

_MEASURE = """
import json, sys, time
from flowdeck.definition.expressions import render
from flowdeck.errors import ExpressionError
expression, ctx = json.loads(sys.stdin.read())
started = time.monotonic()
try:
    render("{{ " + expression + " }}", ctx)
    outcome = "value"
except ExpressionError as error:
    outcome = error.message
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started, "max_rss_mb": peak_kb / 1024}))
"""

PRODUCTS = {
    "ranges": ("[1..100000].([1..100000])", {}),
    "context arrays": ("($a := input.a; $a.($a))", {"input": {"a": list(range(20_000))}}),
    "counted": ("$count([1..100000].([1..100000]))", {}),
}


def measured(expression: str, ctx: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        input=json.dumps([expression, ctx]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("what", list(PRODUCTS))
def test_a_path_that_multiplies_arrays_stops_before_it_takes_the_memory(what: str) -> None:
    result = measured(*PRODUCTS[what])
    assert "more than" in str(result["outcome"]) and f"{MAX_LIST:,}" in str(result["outcome"]), result
    assert result["max_rss_mb"] < 400, result  # the interpreter and flowdeck are ~60 MB; 1M items ~100 MB
    assert result["seconds"] < 1.5, result


def test_a_product_under_the_bound_still_evaluates() -> None:
    assert render("{{ $count([1..900].([1..1000])) }}", {}) == 900_000
    assert render("{{ [1..3].(['a', 'b']) }}", {}) == ["a", "b", "a", "b", "a", "b"]


@pytest.mark.parametrize(
    "expression",
    [
        "( $f := function($n){ $n = 0 ? 0 : $f($n-1) + 1 }; $f(100000) )",  # deep recursion
        "( $f := function($n){ $n < 2 ? $n : $f($n-1) + $f($n-2) }; $f(40) )",  # exponential
        "( $Y := function($f){ function($x){ $f($f)($x) } }; $Y(function($g){ function($n){ $g($g)($n) } })(1) )",
        "$map(input.a, function($x){ $map(input.a, function($y){ $x * $y }) })",  # 10^8 products
        "$reduce(input.a, function($acc, $x){ $acc & input.s }, '')",  # a string that doubles
        "$merge($map([1..100000], function($x){ {'k' & $string($x): input.s} }))",
    ],
)
def test_slow_expressions_without_regexes_are_stopped(expression: str) -> None:
    """Held: the clock, the depth bound and the size bounds stop each within about its time limit.
    (In a process of its own: up to MAX_MEMORY_MB would stay as this test process's peak.)"""
    result = measured(expression, {"input": {"a": list(range(10_000)), "s": "x" * 100_000}})
    assert "was stopped" in str(result["outcome"]), result
    assert float(result["seconds"]) < 2.0, result  # type: ignore[arg-type]


KEPT = {  # each string or array under its cap; how many are kept was not bounded
    "padded strings": '$count($map([1..100000], function($x){ $pad("", 999999) }))',
    "arrays of ranges": "$count($map([1..100000], function($x){ [1..100000] }))",
    "objects of strings": '$count([1..100000].{"a": $pad("", 999999)})',
    "concatenations": "$count($map([1..100000], function($x){ input.s & $string($x) }))",
}


@pytest.mark.parametrize("what", list(KEPT))
def test_many_values_each_under_its_cap_are_stopped_by_the_memory_bound(what: str) -> None:
    result = measured(KEPT[what], {"input": {"s": "x" * 200_000}})
    assert f"more than {MAX_MEMORY_MB} MB of memory" in str(result["outcome"]), result
    assert result["max_rss_mb"] < MAX_MEMORY_MB + 250, result


def test_many_templates_each_under_the_cap_cannot_make_a_huge_output() -> None:
    """40 fields of `$pad('', 999999)` gave an output step a 40 MB output (stored, and served
    back by GET): each string was under MAX_STRING, their sum was not bounded."""
    template = "{{ $pad('', 999999, 'x') }}"
    with pytest.raises(ExpressionError, match=f"more than {MAX_RENDERED_CHARS:,} characters"):
        render({f"f{index}": template for index in range(40)}, {})
    with pytest.raises(ExpressionError, match="more than"):
        render({"list": "{{ $map([1..20], function($x){ $pad('', 999999) }) }}"}, {})
    fields = render({f"f{index}": template for index in range(10)}, {})  # ~10 MB: at the bound, fine
    assert sum(len(value) for value in fields.values()) == 9_999_990
