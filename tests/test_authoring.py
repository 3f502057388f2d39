"""`flowdeck test`: the workflow test runner, offline, as a user runs it (the CLI in-process).

Every test works on its own copy of tests/fixtures_authoring (the example workflows, a
workflow that calls another, and their test files), never on the repository's definitions/.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowdeck.authoring import testfile
from flowdeck.cli.app import app

pytestmark = pytest.mark.fast

FIXTURES = Path(__file__).parent / "fixtures_authoring"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "definitions")
    return tmp_path / "definitions"


def flowdeck(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


LOOKUP_CASE = """\
workflow: lookup_contact
cases:
  - name: {name}
    input: {{customer_email: alice@example.com}}
    http:
      - match: {{method: GET, url: "https://crm.example.com/api/contacts*"}}
        respond: {{json: {{contacts: [{{id: c_1, name: Alice}}]}}}}
    expect:
{expect}
"""


def lookup_case(expect: str, name: str = "the case") -> str:
    """A test file with one case of lookup_contact, the CRM answered, expecting `expect`."""
    indented = "\n".join("      " + line for line in expect.strip().splitlines())
    return LOOKUP_CASE.format(name=name, expect=indented)


def run_cases(workspace: Path, text: str, *options: str) -> tuple[int, str, Path]:
    """Writes `text` as the workspace's only.test.yaml and runs `flowdeck test` on that file alone."""
    path = write(workspace, "only.test.yaml", text)
    code, stdout, _ = flowdeck("test", "-d", str(workspace), *options, str(path))
    return code, stdout, path


# --------------------------------------------------------------------------- the examples


def test_every_example_passes_including_failure_paths(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # contact_card's action: actions_fixture
    code, stdout, _ = flowdeck("test", "-d", str(workspace))
    assert code == 0, stdout
    first, *_, last = stdout.strip().splitlines()
    assert set(first) == {"."}
    assert last.startswith(f"{len(first)} passed, 0 failed in ")


def test_test_files_are_not_workflow_versions(workspace: Path) -> None:
    from flowdeck.definition.catalog import load_catalog

    catalog = load_catalog(workspace)
    assert not [file.path for file in catalog.files if file.path.endswith(".test.yaml")]
    assert not catalog.has_errors


# --------------------------------------------------------------------------- each expect key


@pytest.mark.parametrize(
    ("expect", "complaint"),
    [
        ("status: failed", "status: expected failed, happened success"),
        ("output: {found: true, contact_id: c_2, name: Alice}", '-  "contact_id": "c_2",\n  +  "contact_id": "c_1",'),
        ("output_includes: {contact_id: c_1, extra: 1}", "output.extra: missing (expected 1)"),
        ("output_includes: {name: Bob}", 'output.name: expected "Bob", happened "Alice"'),
        ("error: {message: boom}", "error: expected the execution to fail, but it ended with status success"),
        (
            "steps: [search, contact]",
            "steps: expected [search, contact]\n  the steps that ran: [search, check_match, contact]",
        ),
        ("branches: {check_match: null}", "branches: condition 'check_match' expected the default, took 'found'"),
        ("requests: []", '+  {\n  +    "method": "GET",'),
    ],
)
def test_a_broken_expectation_fails_the_case_and_says_how(workspace: Path, expect: str, complaint: str) -> None:
    code, stdout, path = run_cases(workspace, lookup_case(expect))
    assert code == 1, stdout
    assert stdout.startswith("F\n")
    assert f"{path}:3: case 'the case' of lookup_contact@1" in stdout
    assert complaint in stdout
    assert "happened: status success, steps that ran: [search, check_match, contact]" in stdout
    assert stdout.strip().splitlines()[-1].startswith("0 passed, 1 failed in ")


def test_every_expect_key_holds_together(workspace: Path) -> None:
    expect = """
status: success
output: {found: true, contact_id: c_1, name: Alice}
output_includes: {found: true}
steps: [search, check_match, contact]
branches: {check_match: found}
requests: [{method: GET, url: "https://crm.example.com/api/contacts?email=alice%40example.com"}]
"""
    code, stdout, _ = run_cases(workspace, lookup_case(expect))
    assert (code, stdout.splitlines()[0]) == (0, "."), stdout


def test_error_expectations_name_the_step_and_match_a_regex(workspace: Path) -> None:
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: lookup_contact
cases:
  - name: mocked error
    input: {customer_email: alice@example.com}
    mocks: {search: {error: CRM down since 09:00}}
    expect: {status: failed, error: {step_name: Search CRM, message: "^CRM down since \\\\d\\\\d:00$"}, steps: [search]}
  - name: wrong step
    input: {customer_email: alice@example.com}
    mocks: {search: {error: CRM down}}
    expect: {error: {step_name: check_match}}
  - name: wrong message
    input: {customer_email: alice@example.com}
    mocks: {search: {error: CRM down}}
    expect: {error: {message: "up"}}
""",
    )
    assert code == 1
    assert stdout.startswith(".FF\n")
    assert "error: expected step 'check_match' to fail, 'Search CRM' failed: CRM down" in stdout
    assert "error: message does not match 'up'\n  the message was: CRM down" in stdout


# --------------------------------------------------------------------------- http, mocks, clock


def test_an_unmocked_request_fails_the_case_with_its_url(workspace: Path) -> None:
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: lookup_contact
cases:
  - name: nobody answers
    input: {customer_email: alice@example.com}
    expect: {status: failed}
  - name: the failure is what the case expects
    input: {customer_email: alice@example.com}
    expect: {error: {message: "unmocked request: GET .*"}}
""",
    )
    assert code == 1
    assert stdout.startswith("F.\n")
    assert "- unmocked request: GET https://crm.example.com/api/contacts?email=alice%40example.com (answer it" in stdout


@pytest.fixture
def crm() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"contacts": [{"id": "c_net", "name": "Net"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_allow_network_sends_what_no_answer_matches(workspace: Path, crm: str) -> None:
    code, stdout, path = run_cases(
        workspace,
        f"""\
workflow: lookup_contact
cases:
  - name: the real CRM
    input: {{customer_email: alice@example.com, crm_base_url: "{crm}"}}
    expect:
      output_includes: {{contact_id: c_net}}
      requests: [{{method: GET, url: "{crm}/api/contacts?email=alice%40example.com"}}]
""",
    )
    assert code == 1 and "unmocked request: GET http://127.0.0.1" in stdout
    code, stdout, _ = flowdeck("test", "-d", str(workspace), str(path), "--allow-network")
    assert code == 0, stdout


def test_http_answers_match_method_and_url_first_match_wins(workspace: Path) -> None:
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: lookup_contact
cases:
  - name: first match
    input: {customer_email: alice@example.com}
    http:
      - match: {method: POST, url: "*"}
        respond: {status: 500}
      - match: {url: "https://crm.example.com/api/contacts?email=alice*"}
        respond: {headers: {X-Source: first}, json: {contacts: [{id: c_first}]}}
      - match: {url: "*"}
        respond: {json: {contacts: [{id: c_second}]}}
    expect: {output_includes: {contact_id: c_first}}
  - name: a text body
    input: {customer_email: alice@example.com}
    http:
      - match: {url: "https://crm.example.com/*"}
        respond: {status: 502, text: Bad gateway}
    expect: {status: failed, error: {message: "returned 502 Bad Gateway: Bad gateway$"}}
""",
    )
    assert code == 0, stdout


def test_waits_end_at_once_on_the_virtual_clock(workspace: Path) -> None:
    started = time.perf_counter()
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: follow_up
cases:
  - name: fifteen minutes
    input: {contact_id: c_1}
    http: [{match: {url: "https://crm.example.com/api/tasks"}, respond: {json: {id: t_1}}}]
    expect: {output: {task_id: t_1, waited_seconds: 900}}
""",
    )
    assert code == 0, stdout
    assert time.perf_counter() - started < 5


def test_until_and_now_read_the_virtual_clock_and_called_workflows_share_the_mocks(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: contact_card
cases:
  - name: an hour later
    input: {email: alice@example.com, call_back_at: "2026-01-01T10:00:00+00:00"}
    mocks: {search: {output: {status_code: 200, headers: {}, body: {contacts: [{id: c_7, name: Ada}]}}}}
    expect:
      output: {contact_id: c_7, greeting: hello Ada, waited_seconds: 3600, now: "2026-01-01T10:00:00.000Z"}
  - name: a time in the past waits nothing
    input: {email: alice@example.com, call_back_at: "2025-12-31T09:00:00Z"}
    mocks: {search: {output: {status_code: 200, headers: {}, body: {contacts: []}}}}
    expect: {output_includes: {greeting: hello stranger, waited_seconds: 0, now: "2026-01-01T09:00:00.000Z"}}
  - name: the called workflow fails
    input: {email: alice@example.com, call_back_at: "2026-01-01T10:00:00Z"}
    mocks: {search: {error: CRM down}}
    expect:
      error:
        step_name: Find the contact
        message: "^workflow 'lookup_contact@1' failed at step 'Search CRM': CRM down$"
      steps: [contact]
  - name: an action is mocked
    input: {email: alice@example.com, call_back_at: "2026-01-01T09:00:00Z"}
    mocks:
      contact: {output: {contact_id: c_3, name: Cy}}
      greeting: {output: hi there}
    expect: {output_includes: {contact_id: c_3, greeting: hi there}, steps: [contact, greeting, call_back, card]}
""",
    )
    assert code == 0, stdout
    from datetime import datetime

    from flowdeck.runtime import interpreter

    assert interpreter.datetime is datetime  # the clock is put back


def test_code_steps_run_for_real_and_mocked_conditions_take_their_branch(workspace: Path) -> None:
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: score_lead
cases:
  - name: really scored
    input: {company_size: 120, budget: 5000}
    expect: {output_includes: {points: 17}}
  - name: the condition is mocked
    input: {company_size: 120, budget: 5000}
    mocks: {tier: {output: hot}}
    expect: {steps: [score, tier, tell_sales, result], branches: {tier: hot}, output_includes: {tier: hot}}
""",
    )
    assert code == 0, stdout


def test_a_condition_that_fails_is_among_the_steps_that_ran(workspace: Path) -> None:
    (workspace / "lookup_contact.yaml").write_text(
        (workspace / "lookup_contact.yaml")
        .read_text()
        .replace('when: "$count(search.body.contacts) > 0"', "when: \"$count(search.body.contacts) > $error('no')\"")
    )
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: lookup_contact
cases:
  - name: the body is not what the condition reads
    input: {customer_email: alice@example.com}
    mocks: {search: {output: {body: {contacts: 7}}}}
    expect: {status: success}
""",
    )
    assert code == 1
    assert "happened: status failed, steps that ran: [search, check_match]" in stdout
    assert "failing step 'check_match': expression" in stdout


def test_input_that_breaks_the_schema_fails_the_case(workspace: Path) -> None:
    code, stdout, _ = run_cases(
        workspace,
        """\
workflow: lookup_contact
cases:
  - name: no email
    input: {}
""",
    )
    assert code == 1
    assert (
        "the execution did not start: input_data is not valid for workflow 'lookup_contact@1': customer_email" in stdout
    )


# --------------------------------------------------------------------------- selecting, reports


def test_k_selects_cases_by_name(workspace: Path) -> None:
    lookup = str(workspace / "lookup_contact.test.yaml")
    code, stdout, _ = flowdeck("test", "-d", str(workspace), "-k", "CRM DOWN", lookup)
    assert code == 0 and stdout.startswith(".\n1 passed, 0 failed"), stdout
    code, _, stderr = flowdeck("test", "-d", str(workspace), "-k", "nothing like it")
    assert code == 2 and "no test case matches -k 'nothing like it'" in stderr


def test_nothing_to_test_is_an_error(tmp_path: Path) -> None:
    code, _, stderr = flowdeck("test", "-d", str(tmp_path))
    assert code == 2 and "no *.test.yaml files under" in stderr
    code, _, stderr = flowdeck("test", "-d", str(tmp_path), str(tmp_path / "missing.test.yaml"))
    assert code == 2 and "no such file or directory" in stderr
    (tmp_path / "hello.yaml").write_text("id: hello\n")
    code, _, stderr = flowdeck("test", "-d", str(tmp_path), str(tmp_path / "hello.yaml"))
    assert code == 2 and "not a test file:" in stderr and "(test files are named *.test.yaml)" in stderr


def test_json_report(workspace: Path) -> None:
    code, stdout, _ = run_cases(workspace, lookup_case("status: failed"), "--json")
    report = json.loads(stdout)
    assert code == 1
    assert (report["passed"], report["failed"], report["problems"]) == (0, 1, [])
    case = report["cases"][0]
    assert (case["name"], case["line"], case["workflow"], case["version"], case["passed"]) == (
        "the case",
        3,
        "lookup_contact",
        1,
        False,
    )
    assert case["execution"]["status"] == "success"
    assert case["execution"]["steps"] == ["search", "check_match", "contact"]


def test_junit_xml(workspace: Path, tmp_path: Path) -> None:
    write(workspace, "only.test.yaml", lookup_case("status: failed"))
    write(workspace, "broken.test.yaml", "workflow: lookup_contact\ncases: []\n")
    target = tmp_path / "junit.xml"
    code, _, _ = flowdeck("test", "-d", str(workspace), "--junit-xml", str(target))
    assert code == 2
    root = ElementTree.parse(target).getroot()
    assert root.tag == "testsuites"
    cases = root.findall(".//testcase")
    failed = [case for case in cases if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["the case"]
    assert failed[0].find("failure").get("message", "").startswith("status: expected failed, happened success")  # type: ignore[union-attr]
    errors = [case for case in cases if case.find("error") is not None]
    error = errors[0].find("error")
    assert error is not None and "broken.test.yaml:2:8: error: 'cases' needs at least 1 item" in (error.text or "")
    assert int(root.get("tests") or 0) == len(cases) - 1


# --------------------------------------------------------------------------- files that do not load


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, expect: {status: succes}}\n",
            "3:32: error: 'expect.status' in case 1 'a' must be one of success, failed (got 'succes') "
            "(did you mean 'success'?)",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, expct: {}}\n",
            "3:15: error: unknown key 'expct' in case 1 'a' (did you mean 'expect'?)",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, mocks: {search: {output: 1, error: x}}}\n",
            "3:31: error: 'mocks.search' in case 1 'a': a mock has exactly one of 'output' or 'error'",
        ),
        ("workflow: nobody\ncases:\n  - {name: a}\n", "1:11: error: unknown workflow 'nobody'; known workflows:"),
        (
            "workflow: lookup_contact\nversion: 7\ncases:\n  - {name: a}\n",
            "2:10: error: workflow 'lookup_contact' has no version 7",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, mocks: {serch: {output: 1}}}\n",
            "3:30: error: mock for step 'serch' in case 'a': workflow 'lookup_contact@1' (and the workflows it calls) "
            "has no such step (did you mean 'search'?)",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, expect: {branches: {search: x}}}\n",
            "names condition step 'search', which workflow 'lookup_contact@1' does not have",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a}\n  - {name: a}\n",
            "4:12: error: case name 'a' is used twice",
        ),
        (
            "workflow: lookup_contact\ncases:\n  - {name: a, mocks: {contact: {output: {}}}}\n",
            "output steps end the execution and cannot be mocked; mock the steps they read instead",
        ),
        ("workflow: lookup_contact\ncases: [\n", "error: YAML syntax error"),
        ("- just a list\n", "1:1: error: a test file is a mapping with workflow and cases"),
    ],
)
def test_a_test_file_that_does_not_load_exits_2_with_its_place(workspace: Path, text: str, message: str) -> None:
    code, stdout, path = run_cases(workspace, text)
    assert code == 2, stdout
    assert f"{path}:" in stdout and message in stdout, stdout
    assert "did not load" in stdout.strip().splitlines()[-1]


def test_inputs_are_bounded(workspace: Path) -> None:
    big = write(workspace, "big.test.yaml", "workflow: lookup_contact\n# " + "x" * testfile.MAX_FILE_BYTES + "\n")
    deep = write(
        workspace,
        "deep.test.yaml",
        "workflow: lookup_contact\ncases:\n  - name: a\n    input: "
        + "{a: " * (testfile.MAX_DEPTH + 5)
        + "1"
        + "}" * (testfile.MAX_DEPTH + 5)
        + "\n",
    )
    many = write(
        workspace,
        "many.test.yaml",
        "workflow: lookup_contact\ncases:\n"
        + "".join(f"  - {{name: c{index}}}\n" for index in range(testfile.MAX_CASES + 1)),
    )
    code, stdout, _ = flowdeck("test", "-d", str(workspace), str(big), str(deep), str(many))
    assert code == 2
    assert f"{big}:1:1: error: the file is {big.stat().st_size:,} bytes, more than the 1,000,000" in stdout
    assert f"{deep}:" in stdout and "nests deeper than 40 levels" in stdout
    assert f"{many}:3:3: error: 1,001 cases, more than the 1,000 one file may hold; split it" in stdout


# --------------------------------------------------------------------------- validate


def test_validate_checks_test_files_against_their_schema(workspace: Path) -> None:
    path = write(workspace, "only.test.yaml", "workflow: Lookup\ncases:\n  - {name: a, trigger: {payload: 1}}\n")
    code, stdout, _ = flowdeck("validate", str(workspace))
    assert code == 1
    assert f"{path}:1:11: error: 'workflow': a workflow id is lower case letters" in stdout
    assert f"{path}:3:24: error: missing required key 'type' in 'trigger' in case 1 'a'" in stdout
    assert "only.test.yaml" not in stdout.replace(str(path), "")  # not also read as a workflow


@pytest.mark.parametrize("fmt", ["json", "github"])
def test_validate_formats(workspace: Path, fmt: str) -> None:
    path = write(workspace, "only.test.yaml", "workflow: lookup_contact\ncases: []\n")
    code, stdout, _ = flowdeck("validate", "--format", fmt, str(workspace))
    assert code == 1
    if fmt == "github":
        assert f"::error file={path},line=2,col=8::'cases' needs at least 1 item" in stdout.splitlines()
        assert any(line.startswith("::warning file=") and "follow_up.yaml" in line for line in stdout.splitlines())
    else:
        report = json.loads(stdout)
        assert report["errors"] == 1 and report["warnings"] == 1
        assert {
            "path": str(path),
            "line": 2,
            "col": 8,
            "severity": "error",
            "message": "'cases' needs at least 1 item",
        } in report["problems"]


def test_validate_refuses_an_unknown_format(workspace: Path) -> None:
    code, _, stderr = flowdeck("validate", "--format", "xml", str(workspace))
    assert code == 2 and "--format 'xml': use one of text, json, github" in stderr


def test_validate_hints_at_the_value_meant(workspace: Path) -> None:
    path = write(
        workspace,
        "only.test.yaml",
        """\
workflow: lookup_contact
cases:
  - name: a
    http: [{match: {url: "*", method: get}, respond: {status: 99}}]
""",
    )
    _, stdout, _ = flowdeck("validate", str(path))
    assert "must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS (got 'get') (did you mean 'GET'?)" in stdout
    assert "'http[0].respond.status' in case 1 'a' must be at least 100 (got 99)" in stdout


def test_the_test_schemas_own_example_runs(workspace: Path) -> None:
    """tests/fixtures_tests holds the example of schemas/workflow-test.schema.json, every key used."""
    example = Path(__file__).parent / "fixtures_tests" / "lookup_contact.test.yaml"
    shutil.copy(example, workspace / "example.test.yaml")
    code, stdout, _ = flowdeck("test", "-d", str(workspace), str(workspace / "example.test.yaml"))
    assert code == 0, stdout
