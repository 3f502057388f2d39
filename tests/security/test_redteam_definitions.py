"""Red team on the definition loader: YAML that is valid but holds what no store can, or asks
the loader to do what it must not.

A double-quoted YAML scalar may spell a lone surrogate (`"\\ud800"`): ruamel builds it into
the definition, and from there it reaches Prefect (an output step's literal becomes the
execution's output; a description, the deployment's) -- the same value the input bounds
refuse because Prefect cannot store it. Before the fix such a file validated clean.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_bounds_definitions import GOOD, only_error, problems_of

HEAD = "id: w\nversion: 1\nstatus: published\n"
STEPS = "steps:\n  - {id: done, type: output, fields: {ok: true}}\n"


@pytest.mark.parametrize(
    "text, line",
    [
        (HEAD + 'description: "card \\ud800"\n' + STEPS, 4),
        (HEAD + 'steps:\n  - {id: done, type: output, fields: {ok: "\\udfff"}}\n', 5),
        (HEAD + 'steps:\n  - {id: done, type: output, fields: {"k\\ud83d": 1}}\n', 5),
    ],
)
def test_a_lone_surrogate_in_a_definition_is_an_error_at_its_place(tmp_path: Path, text: str, line: int) -> None:
    error = only_error(problems_of(tmp_path, "w.yaml", text), "lone surrogate")
    assert error.startswith(f"{line}:"), error


def test_other_unicode_stays_fine_and_a_surrogate_pair_gets_a_hint(tmp_path: Path) -> None:
    text = HEAD + 'description: "\\U0001f600 caf\\u00e9 \U0001f600"\n' + STEPS
    assert problems_of(tmp_path, "w.yaml", text) == []
    pair = HEAD + 'description: "\\ud83d\\ude00"\n' + STEPS  # YAML escapes are code points: two halves
    only_error(problems_of(tmp_path, "w.yaml", pair), "lone surrogate (\\ud83d)", "\\U0001F600")


def test_python_tags_build_nothing(tmp_path: Path) -> None:
    """Held: the loader is ruamel's safe round-trip loader; a python tag is data or an error."""
    marker = tmp_path / "PWNED"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/name:os.system"):
        text = HEAD + f"description: {tag} ['touch {marker}']\n" + STEPS
        problems_of(tmp_path, "w.yaml", text)
    assert not marker.exists()


def test_a_byte_order_mark_and_a_long_line_load(tmp_path: Path) -> None:
    """Held: a BOM is not part of the first key; a 900,000-character line is read in well under a second."""
    assert problems_of(tmp_path, "bom.yaml", "\ufeff" + GOOD) == []
    started = time.monotonic()
    assert problems_of(tmp_path, "long.yaml", HEAD + "description: " + "x" * 900_000 + "\n" + STEPS) == []
    assert time.monotonic() - started < 3


def test_a_chain_of_merge_keys_is_bounded(tmp_path: Path) -> None:
    """Held: each `<<: *previous` re-expands the whole chain: counted like aliases, refused early."""
    chain = "".join(f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}\n" if i else "m0: &m0 {k: 0}\n" for i in range(600))
    started = time.monotonic()
    only_error(problems_of(tmp_path, "merge.yaml", HEAD + chain + STEPS), "expands to more than")
    assert time.monotonic() - started < 2
