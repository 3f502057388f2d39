"""graph, eval (and its prompt), new, version new, promote: offline authoring commands, in-process.

Each test works on its own copy of tests/fixtures_authoring, never on definitions/.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowdeck.authoring.prompt import run_prompt
from flowdeck.cli.app import app

pytestmark = pytest.mark.fast

FIXTURES = Path(__file__).parent / "fixtures_authoring"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "definitions")
    (tmp_path / "schemas").mkdir()
    for name in ("workflow.schema.json", "workflow-test.schema.json"):
        shutil.copy(Path(__file__).parent.parent / "schemas" / name, tmp_path / "schemas" / name)
    return tmp_path / "definitions"


def flowdeck(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- graph


def test_graph_text_shows_steps_branches_and_their_conditions(workspace: Path) -> None:
    code, stdout, _ = flowdeck("graph", "lookup_contact", "-d", str(workspace))
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == f"lookup_contact@1 (live) Lookup contact: {workspace / 'lookup_contact.yaml'}"
    assert lines[1].startswith('├─ search "Search CRM" [http]  GET {{ input.crm_base_url')
    assert lines[2:] == [
        "└─ check_match [condition]",
        "   ├─ ◇ found when $count(search.body.contacts) > 0",
        "   │  └─ contact [output]  ends: success (found, contact_id, name)",
        "   └─ ◇ default",
        "      └─ no_contact [output]  ends: success (found, contact_id)",
    ]


def test_graph_shows_waits_and_calls(workspace: Path) -> None:
    code, stdout, _ = flowdeck("graph", "contact_card", "-d", str(workspace))
    assert code == 0
    assert '├─ contact "Find the contact" [workflow]  calls lookup_contact@latest' in stdout
    assert "├─ call_back [wait]  until input.call_back_at" in stdout
    code, stdout, _ = flowdeck("graph", "follow_up", "-d", str(workspace))
    assert '├─ let_them_breathe "Wait 15 minutes" [wait]  15m' in stdout


def test_graph_mermaid_forks_at_conditions_and_joins_after_them(workspace: Path) -> None:
    code, stdout, _ = flowdeck("graph", "score_lead", "--format", "mermaid", "-d", str(workspace))
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    s_tier{"tier [condition]"}' in lines
    assert '    s_tier -- "hot: score.points >= 70" --> s_tell_sales' in lines
    assert '    s_tier -- "warm: {{ score.points >= 40 }}" --> s_result' in lines
    assert '    s_tier -- "default" --> s_nurture' in lines
    assert "    s_tell_sales --> s_result" in lines and "    s_nurture --> s_result" in lines
    assert not any("finish" in line for line in lines)  # every path ends at the output step


def test_graph_dot_and_versions(workspace: Path) -> None:
    code, stdout, _ = flowdeck("graph", "score_lead", "--version", "3", "--format", "dot", "-d", str(workspace))
    assert code == 0
    assert stdout.startswith('digraph "score_lead@3" {')
    assert 's_check_budget -> s_reject [label="no_budget: input.budget = 0"];' in stdout
    assert 's_check_budget -> s_score [label="default"];' in stdout
    assert "s_reject [shape=oval" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "nobody"], "unknown workflow 'nobody'; known workflows:"),
        (["graph", "score_lead", "--version", "9"], "workflow 'score_lead' has no version 9"),
        (["graph", "score_lead", "--format", "png"], "--format 'png': use one of text, mermaid, dot"),
    ],
)
def test_graph_refusals(workspace: Path, args: list[str], message: str) -> None:
    code, _, stderr = flowdeck(*args, "-d", str(workspace))
    assert code == 2 and message in stderr


# --------------------------------------------------------------------------- eval


def test_eval_prints_the_typed_value(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps({"input": {"name": "Ada", "scores": [1, 2, 3]}}))
    assert flowdeck("eval", "$sum(input.scores)", "--ctx", str(ctx))[:2] == (0, "6  (number)\n")
    assert flowdeck("eval", "Hi {{ input.name }}!", "--ctx", str(ctx))[:2] == (0, '"Hi Ada!"  (string)\n')
    assert flowdeck("eval", "{{ input.scores }}", "--ctx", str(ctx), "--json")[1] == "[\n  1,\n  2,\n  3\n]\n"
    assert flowdeck("eval", "input.missing", "--ctx", str(ctx))[1] == "null  (null)\n"
    assert flowdeck("eval", "input.name = 'Ada'")[1] == "false  (boolean)\n"  # the empty context


def test_eval_reads_a_yaml_context_too(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.yaml"
    ctx.write_text("input: {tier: hot}\n")
    assert flowdeck("eval", "input.tier", "--ctx", str(ctx))[1] == '"hot"  (string)\n'


def test_eval_on_the_context_a_test_case_builds(workspace: Path) -> None:
    case = f"{workspace / 'lookup_contact.test.yaml'}:known contact"
    code, stdout, _ = flowdeck(
        "eval", "search.body.contacts[0].id & ' / ' & check_match", "--case", case, "-d", str(workspace)
    )
    assert (code, stdout) == (0, '"c_1 / found"  (string)\n')


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["eval", "input."], "cannot parse expression `input.`", 1),
        (["eval", "[1..1000000000]"], "has more than 100,000 items", 1),
        (["eval"], "give an EXPRESSION, or --repl for a prompt", 2),
        (["eval", "1", "--ctx", "nope.json"], "cannot read --ctx nope.json", 2),
        (["eval", "1", "--ctx", "a", "--case", "b:c"], "give at most one of --ctx, --execution and --case", 2),
        (["eval", "1", "--case", "nocolon"], "--case 'nocolon': write it as TEST_FILE:CASE_NAME", 2),
    ],
)
def test_eval_errors_are_one_line(workspace: Path, args: list[str], message: str, exit_code: int) -> None:
    code, stdout, stderr = flowdeck(*args, "-d", str(workspace))
    assert code == exit_code and message in stderr and "Traceback" not in stdout + stderr


def test_eval_case_that_does_not_exist(workspace: Path) -> None:
    case = f"{workspace / 'lookup_contact.test.yaml'}:no such case"
    code, _, stderr = flowdeck("eval", "1", "--case", case, "-d", str(workspace))
    assert code == 2 and "has no case 'no such case'; its cases: 'known contact'" in stderr


def test_the_prompt_evaluates_lines_and_keeps_a_history(tmp_path: Path) -> None:
    lines = iter(["input.name", "1 +", "", ":ctx", ":quit", "never read"])
    output = io.StringIO()
    history = tmp_path / "history"
    run_prompt({"input": {"name": "Ada"}}, history, read=lambda prompt: next(lines), write=output)
    printed = output.getvalue().splitlines()
    assert printed[0] == "names: input  (:ctx, :quit)"
    assert printed[1] == '"Ada"  (string)'
    assert printed[2].startswith("error: cannot parse expression `1 +`")
    assert '"name": "Ada"' in output.getvalue()
    assert history.exists()


# --------------------------------------------------------------------------- new


@pytest.mark.parametrize("template", ["http", "branching", "follow-up"])
def test_new_writes_a_definition_and_a_test_file_that_passes(workspace: Path, template: str) -> None:
    code, stdout, _ = flowdeck("new", "fresh_one", "--template", template, "-d", str(workspace))
    assert code == 0, stdout
    definition = (workspace / "fresh_one.yaml").read_text()
    assert definition.startswith("# yaml-language-server: $schema=../schemas/workflow.schema.json\nid: fresh_one\n")
    assert (
        (workspace / "fresh_one.test.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=../schemas/workflow-test.schema.json\n")
    )
    assert flowdeck("validate", str(workspace))[0] == 0
    code, stdout, _ = flowdeck("test", str(workspace / "fresh_one.test.yaml"), "-d", str(workspace))
    assert code == 0, stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "hello"], "workflow 'hello' exists already"),
        (["new", "Hello-2"], "workflow id 'Hello-2': use lower case letters"),
        (["new", "fresh", "--template", "loop"], "--template 'loop': use one of http, branching, follow-up"),
    ],
)
def test_new_refusals(workspace: Path, args: list[str], message: str) -> None:
    code, _, stderr = flowdeck(*args, "-d", str(workspace))
    assert code == 2 and message in stderr


# --------------------------------------------------------------------------- versions


def test_version_new_copies_the_highest_version_as_a_draft(workspace: Path) -> None:
    code, stdout, _ = flowdeck("version", "new", "score_lead", "-d", str(workspace))
    assert code == 0
    assert "score_lead v4: new draft, a copy of v3" in stdout
    old = (workspace / "score_lead" / "v3.yaml").read_text().splitlines()
    new = (workspace / "score_lead" / "v4.yaml").read_text().splitlines()
    assert [(a, b) for a, b in zip(old, new, strict=True) if a != b] == [("version: 3", "version: 4")]
    code, stdout, _ = flowdeck("version", "new", "hello", "-d", str(workspace))
    hello = (workspace / "hello.v2.yaml").read_text()
    assert "version: 2\nstatus: draft\n" in hello and "# 09:00 on weekdays" in hello
    assert flowdeck("validate", str(workspace))[0] == 0


def test_promote_to_live_demotes_the_live_version_and_keeps_everything_else(workspace: Path) -> None:
    v2, v3 = workspace / "score_lead" / "v2.yaml", workspace / "score_lead" / "v3.yaml"
    v3.write_text(v3.read_text().replace("status: draft", 'status: "draft"   # being edited'))
    before = {path: path.read_text() for path in (v2, v3)}
    code, stdout, _ = flowdeck("promote", "score_lead", "3", "--to", "live", "-d", str(workspace))
    assert code == 0, stdout
    assert stdout.splitlines() == [
        f"score_lead v3: draft -> live ({v3})",
        f"score_lead v2: live -> published ({v2})",
        f"{workspace / 'versions.lock'}: recorded 2 frozen version(s)",  # both are frozen from now on
    ]
    assert v3.read_text() == before[v3].replace('status: "draft"   # being edited', "status: live   # being edited")
    assert v2.read_text() == before[v2].replace("status: live", "status: published")
    assert flowdeck("validate", str(workspace))[0] == 0


def test_promote_adds_a_missing_status(workspace: Path) -> None:
    v3 = workspace / "score_lead" / "v3.yaml"
    v3.write_text(v3.read_text().replace("status: draft\n", ""))
    assert flowdeck("promote", "score_lead", "3", "--to", "published", "-d", str(workspace))[0] == 0
    assert "version: 3\nstatus: published\n" in v3.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score_lead", "2", "--to", "live"], "workflow 'score_lead' version 2 is already live"),
        (["score_lead", "2", "--to", "published"], "version 2 is live: promote moves forward only"),
        (["score_lead", "9", "--to", "live"], "workflow 'score_lead' has no version 9; it has versions 2 (live), 3"),
        (["score_lead", "3", "--to", "draft"], "--to 'draft': promote to one of published, live"),
        (["nobody", "1", "--to", "live"], "unknown workflow 'nobody'"),
    ],
)
def test_promote_refuses_what_the_rules_forbid(workspace: Path, args: list[str], message: str) -> None:
    code, _, stderr = flowdeck("promote", *args, "-d", str(workspace))
    assert code == 2 and message in stderr


def test_promote_refuses_a_version_with_errors(workspace: Path) -> None:
    v3 = workspace / "score_lead" / "v3.yaml"
    v3.write_text(v3.read_text().replace("type: code", "type: kode"))
    code, _, stderr = flowdeck("promote", "score_lead", "3", "--to", "live", "-d", str(workspace))
    assert code == 2 and f"version 3 has validation errors ({v3}); fix them first" in stderr
    assert "status: draft" in v3.read_text()


def test_new_outside_a_checkout_points_the_modeline_at_the_installed_schema(tmp_path: Path) -> None:
    definitions = tmp_path / "elsewhere"
    code, _, _ = flowdeck("new", "lone", "-d", str(definitions))
    assert code == 0
    first_line = (definitions / "lone.yaml").read_text().splitlines()[0]
    reference = first_line.removeprefix("# yaml-language-server: $schema=")
    assert reference.endswith("workflow.schema.json") and (definitions / reference).resolve().is_file()
    assert flowdeck("test", "-d", str(definitions))[0] == 0
