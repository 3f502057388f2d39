"""The catalog: which version runs, and what the model built from YAML looks like."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from support.paths import EXAMPLE_DEFINITIONS

from flowdeck.definition.catalog import load_catalog
from flowdeck.definition.durations import format_seconds, parse_duration, wait_duration_seconds
from flowdeck.definition.model import (
    ActionStep,
    CodeStep,
    ConditionStep,
    HttpStep,
    RetryPolicy,
    SourceRef,
    WaitStep,
    WorkflowCallStep,
)
from flowdeck.errors import NotRunnable, UnknownVersion, UnknownWorkflow

ROOT = Path(__file__).resolve().parent.parent


def write(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


def version_file(directory: Path, workflow_id: str, version: int, status: str) -> None:
    write(
        directory,
        f"{workflow_id}/v{version}.yaml",
        f"id: {workflow_id}\nversion: {version}\nstatus: {status}\nsteps: [{{id: n, type: note}}]\n",
    )


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (45, 45), (0, 0), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["15 minutes", "15", "m", "-1s", -1, True, None, 1.5, "1w"])
def test_bad_durations_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="expected a duration such as 500ms, 90s, 15m, 2h, 1d"):
        parse_duration(bad)


def test_wait_durations_accept_value_and_unit_with_defaults():
    assert wait_duration_seconds({"value": 15, "unit": "minutes"}) == 900
    assert wait_duration_seconds({"value": 2}) == 120  # unit defaults to minutes
    assert wait_duration_seconds({"unit": "hours"}) == 3600  # value defaults to 1
    assert wait_duration_seconds({}) == 60
    assert wait_duration_seconds("90s") == 90
    with pytest.raises(ValueError, match="unknown unit 'weeks'"):
        wait_duration_seconds({"unit": "weeks"})


def test_format_seconds_is_the_shortest_exact_text():
    assert [format_seconds(s) for s in (0, 0.5, 60, 90, 3600, 86400, 1.25)] == [
        "0s",
        "500ms",
        "1m",
        "90s",
        "1h",
        "1d",
        "1250ms",
    ]


# ---------------------------------------------------------------- version resolution


@pytest.fixture
def catalog(tmp_path):
    version_file(tmp_path, "both", 1, "published")
    version_file(tmp_path, "both", 2, "live")
    version_file(tmp_path, "both", 3, "published")
    version_file(tmp_path, "both", 4, "draft")
    version_file(tmp_path, "published_only", 1, "published")
    version_file(tmp_path, "published_only", 2, "published")
    version_file(tmp_path, "published_only", 3, "draft")
    version_file(tmp_path, "drafts", 1, "draft")
    loaded = load_catalog(tmp_path)
    assert loaded.problems == []
    return loaded


def test_latest_is_the_live_version_even_when_a_higher_one_is_published(catalog):
    assert catalog.resolve("both", "latest", allow_draft=False).version == 2
    assert catalog.resolve("both", None, allow_draft=False).version == 2


def test_latest_without_live_is_the_highest_published_never_a_draft(catalog):
    assert catalog.resolve("published_only", "latest", allow_draft=True).version == 2


def test_latest_with_only_drafts_is_not_runnable_and_says_what_exists(catalog):
    with pytest.raises(NotRunnable) as caught:
        catalog.resolve("drafts", "latest", allow_draft=False)
    assert str(caught.value) == (
        "workflow 'drafts' has versions 1 (draft); 'latest' resolves to live or published versions only"
    )


def test_a_number_pins_that_version(catalog):
    assert catalog.resolve("both", 1, allow_draft=False).version == 1
    assert catalog.resolve("both", "3", allow_draft=False).version == 3


def test_drafts_run_only_by_number_and_only_when_allowed(catalog):
    assert catalog.resolve("both", 4, allow_draft=True).status == "draft"
    with pytest.raises(NotRunnable, match="version 4 is a draft; drafts run only when pinned"):
        catalog.resolve("both", 4, allow_draft=False)


def test_unknown_workflow_and_version_list_what_exists(catalog):
    with pytest.raises(UnknownWorkflow) as caught:
        catalog.resolve("nope", allow_draft=True)
    assert str(caught.value) == "unknown workflow 'nope'; known workflows: both, drafts, published_only"
    with pytest.raises(UnknownVersion) as caught:
        catalog.resolve("both", 9, allow_draft=True)
    assert str(caught.value) == (
        "workflow 'both' has no version 9; it has versions 1 (published), 2 (live), 3 (published), 4 (draft)"
    )
    for bad in ("v2", "0", -1, True):
        with pytest.raises(UnknownVersion):
            catalog.resolve("both", bad, allow_draft=True)


def test_workflows_groups_versions_ascending(catalog):
    grouped = catalog.workflows()
    assert list(grouped) == ["both", "drafts", "published_only"]
    assert [d.version for d in grouped["both"]] == [1, 2, 3, 4]


def test_a_broken_live_file_is_listed_and_not_silently_replaced(tmp_path):
    version_file(tmp_path, "flaky", 1, "published")
    write(tmp_path, "flaky/v2.yaml", "id: flaky\nversion: 2\nstatus: live\nsteps: [{id: x, type: http}]\n")
    loaded = load_catalog(tmp_path)
    assert [d.key for d in loaded.definitions] == ["flaky@1"]
    broken = [f for f in loaded.files if f.has_errors]
    assert [(f.workflow_id, f.version, f.status) for f in broken] == [("flaky", 2, "live")]
    assert "missing required key 'url'" in broken[0].problems[0].message
    assert broken[0].source_text.startswith("id: flaky")
    with pytest.raises(NotRunnable, match=r"version 2 has validation errors \(.*v2.yaml\)"):
        loaded.resolve("flaky", "latest", allow_draft=False)
    assert loaded.resolve("flaky", 1, allow_draft=False).version == 1


def test_two_live_versions_keep_the_highest(tmp_path):
    version_file(tmp_path, "twice", 1, "live")
    version_file(tmp_path, "twice", 2, "live")
    loaded = load_catalog(tmp_path)
    assert [str(p).split(": ", 1)[1] for p in loaded.problems] == [
        f"error: workflow 'twice' has more than one live version: version 2 in "
        f"{tmp_path}/twice/v2.yaml is live; set this one to published"
    ]
    assert loaded.resolve("twice", allow_draft=False).version == 2


# ---------------------------------------------------------------- loading


def test_the_examples_load(monkeypatch):
    # ./definitions by default, in the suite's copy of the examples (a user's own workflows
    # in the repository's definitions/ are not the examples).
    monkeypatch.chdir(EXAMPLE_DEFINITIONS.parent)
    monkeypatch.delenv("FLOWDECK_DEFINITIONS", raising=False)
    loaded = load_catalog()
    assert {key: [d.status for d in versions] for key, versions in loaded.workflows().items()} == {
        "follow_up": ["live"],
        "hello": ["live"],
        "lookup_contact": ["live"],
        "score_lead": ["published", "live", "draft"],
    }
    assert loaded.resolve("score_lead", allow_draft=False).version == 2
    assert all(not f.has_errors for f in loaded.files)


def test_the_directory_comes_from_the_environment(tmp_path, monkeypatch):
    version_file(tmp_path, "from_env", 1, "live")
    write(tmp_path, "deeper/still/other.yml", "id: other\nversion: 1\nsteps: [{id: done, type: output}]\n")
    monkeypatch.setenv("FLOWDECK_DEFINITIONS", str(tmp_path))
    assert sorted(load_catalog().workflows()) == ["from_env", "other"]


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path):
    loaded = load_catalog(tmp_path / "nowhere")
    assert loaded.definitions == []
    assert "definitions directory not found" in str(loaded.problems[0])


def test_loading_the_examples_is_fast():
    load_catalog(EXAMPLE_DEFINITIONS)  # warm: schema compiled once per process
    started = time.perf_counter()
    load_catalog(EXAMPLE_DEFINITIONS)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"loading 6 example files took {elapsed:.2f}s"


# ---------------------------------------------------------------- the model


FULL = """
id: full
version: 3
status: published
sync_timeout: 20s
timeout: 2h
retries: {max_retries: 2, delay: 500ms}
triggers:
  - {type: schedule, cron: "*/5 * * * *"}
steps:
  - id: fetch
    type: http
    url: "https://example.com/{{ input.id }}"
  - id: compute
    name: Compute it
    type: code
    timeout: 3s
    code: |
      def run(ctx):
          return 1
  - id: route
    type: condition
    branches:
      - name: big
        when: compute > 0
        steps:
          - {id: pause, type: wait, duration: {value: 2}}
          - {id: until, type: wait, until: "input.at"}
    default:
      - {id: act, type: action, uses: "json:dumps", with: {obj: "{{ input }}"}}
  - {id: call, type: workflow, workflow_id: helper, version: 1, input: {id: 1}}
"""


def test_the_model_has_defaults_seconds_and_sources(tmp_path):
    write(tmp_path, "full.yaml", FULL)
    write(tmp_path, "helper.yaml", "id: helper\nversion: 1\nstatus: published\nsteps: [{id: done, type: output}]\n")
    loaded = load_catalog(tmp_path)
    assert [p for p in loaded.problems if p.is_error] == []
    definition = loaded.resolve("full", 3, allow_draft=False)
    assert definition.name == "full"
    assert definition.sync_timeout == 20.0 and definition.timeout == 7200.0
    assert definition.retries == RetryPolicy(max_retries=2, delay=0.5, backoff=1.0)
    assert definition.input_schema == {"type": "object"}
    assert definition.triggers[0].cron == "*/5 * * * *" and definition.triggers[0].timezone == "UTC"
    assert definition.triggers[0].input == {}

    fetch, compute, route, call = definition.steps
    assert isinstance(fetch, HttpStep)
    assert (fetch.name, fetch.method, fetch.timeout, fetch.fail_on_status) == ("fetch", "GET", 30.0, True)
    assert fetch.source == SourceRef(str(tmp_path / "full.yaml"), 10, 5)
    assert isinstance(compute, CodeStep) and compute.name == "Compute it" and compute.timeout == 3.0
    assert compute.memory_mb == 256 and compute.code.startswith("def run(ctx):")
    assert isinstance(route, ConditionStep) and route.branches[0].when == "compute > 0"
    pause, until = route.branches[0].steps
    assert isinstance(pause, WaitStep) and pause.duration == 120.0 and pause.until is None
    assert until.until == "input.at" and until.duration is None
    assert route.branches[0].source.line == 23
    (act,) = route.default
    assert isinstance(act, ActionStep) and act.with_ == {"obj": "{{ input }}"} and act.uses == "json:dumps"
    assert isinstance(call, WorkflowCallStep) and call.version == 1 and call.input == {"id": 1}
    assert [step.id for step in definition.all_steps()] == [
        "fetch",
        "compute",
        "route",
        "pause",
        "until",
        "act",
        "call",
    ]


def test_model_defaults_for_a_minimal_workflow(tmp_path):
    write(tmp_path, "mini.yaml", "id: mini\nversion: 1\nsteps: [{id: w, type: workflow, workflow_id: other}]\n")
    version_file(tmp_path, "other", 1, "live")
    loaded = load_catalog(tmp_path)
    definition = loaded.resolve("mini", 1, allow_draft=True)
    assert definition.status == "draft" and definition.sync_timeout is None
    assert definition.timeout == 3600.0 and definition.retries == RetryPolicy()
    assert definition.steps[0].version == "latest" and definition.steps[0].input is None
