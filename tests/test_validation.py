"""Every class of validation problem, with the exact line and column it points at."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.paths import EXAMPLE_DEFINITIONS

from flowdeck.definition.validation import Problem, check_text, validate_paths

ROOT = Path(__file__).resolve().parent.parent


def problems(yaml_text: str, path: str = "wf.yaml") -> list[str]:
    """The problems of one file as the CLI prints them, sorted."""
    checked = check_text(textwrap.dedent(yaml_text).lstrip("\n"), path)
    return [str(problem) for problem in sorted(checked.problems, key=Problem.sort_key)]


def write(directory: Path, name: str, yaml_text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(yaml_text).lstrip("\n"))
    return path


HEADER = """
id: demo
version: 1
steps:
"""


def steps(body: str) -> str:
    """A minimal workflow around `body` (the steps, indented by two); steps start on line 4."""
    return HEADER.lstrip("\n") + textwrap.indent(textwrap.dedent(body).lstrip("\n"), "  ")


def step_problems(body: str) -> list[str]:
    """The problems of the minimal workflow around `body` (see steps)."""
    return problems(steps(body))


def test_problem_prints_as_path_line_col_severity_message():
    problem = Problem("definitions/a.yaml", 3, 7, "error", "something is wrong")
    assert str(problem) == "definitions/a.yaml:3:7: error: something is wrong"
    assert str(Problem("a.yaml", 1, 1, "warning", "hm")) == "a.yaml:1:1: warning: hm"


def test_a_valid_workflow_has_no_problems():
    assert (
        step_problems("""
        - id: hi
          type: output
          fields: {message: "Hello {{ input.name }}"}
    """)
        == []
    )


# ---------------------------------------------------------------- YAML itself


def test_yaml_syntax_error_is_a_problem_at_its_position():
    assert problems("id: demo\nsteps: [1, 2\n") == [
        "wf.yaml:3:1: error: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)"
    ]


def test_bad_indentation_is_reported_where_it_happens():
    assert problems("id: demo\nversion: 1\n  steps: []\n") == [
        "wf.yaml:3:8: error: YAML syntax error: mapping values are not allowed here"
    ]


def test_duplicate_keys_are_errors_with_both_positions():
    found = problems("""
        id: demo
        version: 1
        version: 2
        steps:
          - id: a
            type: note
            text: one
            text: two
    """)
    assert found == [
        "wf.yaml:3:1: error: duplicate key 'version' in workflow 'demo' (first at line 2); "
        "the second one would be ignored: remove one",
        "wf.yaml:8:5: error: duplicate key 'text' in note step 'a' (first at line 7); "
        "the second one would be ignored: remove one",
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("", "an empty file"),
        ("# only a comment\n", "an empty file"),
        ("- a\n- b\n", "a list"),
        ("just text\n", "a string"),
    ],
)
def test_a_file_that_is_not_a_mapping_says_what_it_found(text, found):
    assert problems(text) == [
        f"wf.yaml:1:1: error: a workflow definition is a mapping with id, version and steps; found {found}"
    ]


# ---------------------------------------------------------------- the schema


def test_missing_key_points_at_the_mapping_that_lacks_it():
    assert step_problems("""
        - id: ok
          type: note
        - id: fetch
          type: http
          method: GET
    """) == ["wf.yaml:6:5: error: missing required key 'url' in http step 'fetch'"]


def test_missing_top_level_keys_point_at_the_document():
    assert problems("# yaml-language-server: $schema=x\nname: Demo\n") == [
        "wf.yaml:2:1: error: missing required key 'id' in the workflow",
        "wf.yaml:2:1: error: missing required key 'steps' in the workflow",
        "wf.yaml:2:1: error: missing required key 'version' in the workflow",
    ]


def test_unknown_key_points_at_the_key_and_suggests_the_right_one():
    assert step_problems("""
        - id: fetch
          type: http
          url: https://example.com
          mehtod: POST
    """) == ["wf.yaml:7:5: error: unknown key 'mehtod' in http step 'fetch' (did you mean 'method'?)"]


def test_unknown_key_without_a_close_match_lists_the_allowed_keys():
    assert step_problems("""
        - id: n
          type: note
          colour: red
    """) == ["wf.yaml:6:5: error: unknown key 'colour' in note step 'n' (allowed: id, type, name, description, text)"]


def test_unknown_step_type_is_reported_once_with_a_suggestion():
    assert step_problems("""
        - id: fetch
          type: htp
          url: https://example.com
    """) == [
        "wf.yaml:5:11: error: unknown step type 'htp' in step 'fetch' (did you mean 'http'?); "
        "use one of http, code, condition, wait, output, fail, note, action, workflow"
    ]


def test_top_level_value_errors():
    found = problems("""
        id: Demo-1
        version: 0
        status: liv
        timeout: 15 minutes
        retries: {max_retries: -1, backof: 2}
        steps: {}
    """)
    assert found == [
        "wf.yaml:1:5: error: 'id' in workflow 'Demo-1': a workflow id is lower case letters, "
        "digits and '_', starts with a letter, at most 64 characters (got 'Demo-1')",
        "wf.yaml:2:10: error: 'version' in workflow 'Demo-1' must be at least 1 (got 0)",
        "wf.yaml:3:9: error: 'status' in workflow 'Demo-1' must be one of draft, published, live "
        "(got 'liv') (did you mean 'live'?)",
        "wf.yaml:4:10: error: 'timeout' in workflow 'Demo-1': expected a duration such as 500ms, "
        "90s, 15m, 2h, 1d, or a whole number of seconds (got '15 minutes')",
        "wf.yaml:5:24: error: 'max_retries' in retries must be at least 0 (got -1)",
        "wf.yaml:5:28: error: unknown key 'backof' in retries (did you mean 'backoff'?)",
        "wf.yaml:6:8: error: 'steps' in workflow 'Demo-1' must be a list (got a mapping)",
    ]


def test_step_id_pattern_and_field_types():
    assert step_problems("""
        - id: Fetch
          type: http
          url: https://example.com
          fail_on_status: "yes"
          headers: {X-Count: [1]}
    """) == [
        "wf.yaml:4:9: error: 'id' in http step 'Fetch': a step id is lower case letters, digits "
        "and '_', starting with a letter (got 'Fetch')",
        "wf.yaml:7:21: error: 'fail_on_status' in http step 'Fetch' must be true or false (got a string)",
        "wf.yaml:8:24: error: 'headers.X-Count' in http step 'Fetch' must be a string or a number "
        "or true or false (got a list)",
    ]


def test_wait_needs_exactly_one_of_duration_and_until():
    assert step_problems("""
        - id: neither
          type: wait
        - id: both
          type: wait
          duration: 5s
          until: input.at
    """) == [
        "wf.yaml:4:5: error: wait step 'neither' needs exactly one of 'duration' or 'until'",
        "wf.yaml:6:5: error: wait step 'both' needs exactly one of 'duration' or 'until'",
    ]


def test_wait_duration_forms_are_checked():
    assert step_problems("""
        - id: text
          type: wait
          duration: 15 minutes
        - id: mapping
          type: wait
          duration: {value: 15, unit: minuts}
        - id: fine
          type: wait
          duration: {value: 30, unit: seconds}
    """) == [
        "wf.yaml:6:15: error: 'duration' in wait step 'text': expected a duration such as 500ms, "
        "90s, 15m, 2h, 1d, a whole number of seconds, or {value: 15, unit: minutes} (got '15 minutes')",
        "wf.yaml:9:33: error: 'duration.unit' in wait step 'mapping' must be one of seconds, "
        "minutes, hours, days (got 'minuts') (did you mean 'minutes'?)",
    ]


def test_action_uses_format_and_workflow_version_form():
    assert step_problems("""
        - id: act
          type: action
          uses: not a module
        - id: call
          type: workflow
          workflow_id: demo
          version: lates
    """) == [
        "wf.yaml:6:11: error: 'uses' in action step 'act': write 'uses' as \"package.module:function\" "
        "(got 'not a module')",
        "wf.yaml:10:14: error: 'version' in workflow step 'call': expected \"latest\" or a version "
        "number >= 1 (got 'lates')",
    ]


def test_nested_steps_in_branches_and_default_are_checked():
    assert step_problems("""
        - id: route
          type: condition
          branches:
            - name: big
              when: input.n > 10
              steps:
                - id: inner
                  type: fail
                  mesage: too big
          default:
            - id: other
              type: output
              fields: []
    """) == [
        "wf.yaml:12:13: error: unknown key 'mesage' in fail step 'inner' (did you mean 'message'?)",
        "wf.yaml:16:17: error: 'fields' in output step 'other' must be a mapping (got a list)",
    ]


def test_condition_needs_a_branch():
    assert step_problems("""
        - id: route
          type: condition
          branches: []
    """) == ["wf.yaml:6:15: error: 'branches' in condition step 'route' needs at least 1 item"]


# ---------------------------------------------------------------- ids and names


def test_duplicate_step_ids_across_nesting_levels():
    assert step_problems("""
        - id: a
          type: note
        - id: route
          type: condition
          branches:
            - name: one
              when: "true"
              steps:
                - id: a
                  type: note
    """) == [
        "wf.yaml:12:17: error: duplicate step id 'a' (also used at line 4); step ids are unique in the whole workflow"
    ]


def test_duplicate_step_names_including_a_name_equal_to_another_id():
    assert step_problems("""
        - id: a
          name: Fetch
          type: note
        - id: b
          name: Fetch
          type: note
        - id: c
          name: a
          type: note
    """) == [
        "wf.yaml:8:11: error: duplicate step name 'Fetch' (also the name of note step 'a' at "
        "line 4); give each step its own 'name'",
        "wf.yaml:11:11: error: step name 'a' is the id of note step 'a' at line 4; expressions "
        "could not tell them apart",
    ]


def test_reserved_context_names_cannot_be_step_ids():
    assert step_problems("""
        - id: input
          type: note
    """) == [
        "wf.yaml:4:9: error: 'input' cannot be a step id: expressions use it for the workflow's "
        "input; choose another id"
    ]


def test_duplicate_branch_names():
    assert step_problems("""
        - id: route
          type: condition
          branches:
            - {name: a, when: "input.x = 1"}
            - {name: a, when: "input.x = 2"}
    """) == [
        "wf.yaml:8:16: error: duplicate branch name 'a' in condition step 'route' (also branch 1); "
        "the condition's output names the branch taken"
    ]


# ---------------------------------------------------------------- expressions


def test_jsonata_syntax_in_when_and_in_templates():
    assert step_problems("""
        - id: route
          type: condition
          branches:
            - name: a
              when: "input.x >"
        - id: done
          type: output
          fields:
            bad: "{{ input.( }}"
            open: "total {{ input.x"
            nested: [{deep: "{{ ] }}"}]
    """) == [
        "wf.yaml:8:15: error: invalid expression in 'when' of branch 'a' of condition step 'route': "
        "cannot parse expression `input.x >`: Unexpected end of expression (at character 9)",
        "wf.yaml:12:12: error: invalid template in 'fields.bad' in output step 'done': cannot parse "
        "expression `input.(`: Expected ) before end of expression (at character 7)",
        "wf.yaml:13:13: error: invalid template in 'fields.open' in output step 'done': template "
        "`total {{ input.x` has a '{{' at character 7 that is never closed with '}}'",
        "wf.yaml:14:23: error: invalid template in 'fields.nested[1].deep' in output step 'done': "
        "cannot parse expression `]`: The symbol ] cannot be used as a unary operator (at character 1)",
    ]


def test_text_fields_that_are_not_templates_are_not_parsed():
    assert (
        step_problems("""
        - id: n
          type: note
          text: "{{ not an expression"
        - id: c
          type: code
          code: |
            def run(ctx):
                return f"{{{ctx['input']}}}"
    """)
        == []
    )


def test_references_to_unknown_names_and_later_steps():
    assert step_problems("""
        - id: first
          type: output
          fields:
            early: "{{ second.body }}"
            typo: "{{ inptu.x }}"
            own: "{{ first }}"
        - id: second
          type: http
          url: https://example.com
    """) == [
        "wf.yaml:7:14: error: 'fields.early' in output step 'first' reads step 'second', which has "
        "not run yet at this point (it comes later, line 10)",
        "wf.yaml:8:13: error: 'fields.typo' in output step 'first' reads 'inptu', which is not "
        "input, trigger, execution or a step of this workflow (did you mean 'input'?)",
        "wf.yaml:9:12: error: 'fields.own' in output step 'first' reads step 'first', its own "
        "output, which does not exist while it runs",
        "wf.yaml:10:5: warning: http step 'second' never runs: output step 'first' before it ends the execution",
    ]


REFERENCES = """
- id: fetch
  name: Fetch contact
  type: http
  url: "https://crm.example.com/{{ input.id }}"
- id: route
  type: condition
  branches:
    - name: known
      when: "`Fetch contact`.status_code = 200 and $exists(fetch.body)"
      steps:
        - id: enrich
          type: http
          url: "https://enrich.example.com/{{ fetch.body.domain }}"
          body: {branch: "{{ route }}"}
    - name: other
      when: "execution.mode = 'sync'"
      steps:
        - id: sibling
          type: fail
          message: "{{ enrich.status_code }}"
  default:
    - id: fallback
      type: output
      fields: {x: "{{ trigger.type }}"}
- id: after
  type: output
  fields:
    branch: "{{ route }}"
    maybe: "{{ enrich.body }}"
"""


def test_reference_rules_around_conditions():
    assert problems(steps(REFERENCES)) == [
        "wf.yaml:23:22: error: 'message' in fail step 'sibling' reads step 'enrich', which is in "
        "another branch of condition step 'route': the two never run in the same execution",
        "wf.yaml:32:14: warning: 'fields.maybe' in output step 'after' reads step 'enrich', which "
        "is inside a branch of condition step 'route' and may not have run (another branch "
        "taken); it reads as null then",
    ]


def test_a_condition_cannot_read_its_own_branches_or_itself():
    assert step_problems("""
        - id: route
          type: condition
          branches:
            - name: a
              when: "route = 'a'"
              steps:
                - {id: inner, type: note}
            - name: b
              when: "$exists(inner)"
    """) == [
        "wf.yaml:8:15: error: 'when' of branch 'a' of condition step 'route' reads step 'route', "
        "its own output, which does not exist while it runs",
        "wf.yaml:12:15: error: 'when' of branch 'b' of condition step 'route' reads step 'inner', "
        "which is inside this condition's branches: it has not run when the branches are checked",
    ]


def test_wait_until_is_an_expression():
    assert step_problems("""
        - id: later
          type: wait
          until: "{{ input.call_back_at"
        - id: later2
          type: wait
          until: "nope.at"
    """) == [
        "wf.yaml:6:12: error: invalid expression in 'until' of wait step 'later': cannot parse "
        "expression `{{ input.call_back_at`: Expected : before end of expression (at character 21)",
        "wf.yaml:9:12: error: 'until' of wait step 'later2' reads 'nope', which is not input, "
        "trigger, execution or a step of this workflow",
    ]


# ---------------------------------------------------------------- code steps


def test_code_syntax_error_points_into_the_block():
    assert step_problems("""
        - id: score
          type: code
          code: |
            def run(ctx):
                points = 1
                return points +
    """) == ["wf.yaml:9:26: error: Python syntax error in the code of code step 'score': invalid syntax (code line 3)"]


def test_code_must_define_run_taking_one_argument():
    assert step_problems("""
        - id: none
          type: code
          code: |
            def go(ctx):
                return 1
        - id: two
          type: code
          code: "def run(a, b): return 1"
        - id: asynchronous
          type: code
          code: |
            import json

            async def run(ctx):
                return 1
        - id: flexible
          type: code
          code: |
            def run(ctx, extra=None, *rest, **options):
                return 1
    """) == [
        "wf.yaml:6:11: error: the code of code step 'none' does not define run(ctx); add "
        "`def run(ctx):` returning the output",
        "wf.yaml:11:11: error: run in code step 'two' must take exactly one argument, the context: `def run(ctx):`",
        "wf.yaml:17:7: error: run in code step 'asynchronous' is async; write `def run(ctx):`",
    ]


# ---------------------------------------------------------------- triggers and input


def test_cron_timezone_and_trigger_input():
    found = problems("""
        id: demo
        version: 1
        input:
          type: object
          required: [email]
        triggers:
          - {type: schedule, cron: "61 * * * *", timezone: Europe/Paris, input: {email: a@b.c}}
          - {type: schedule, cron: "0 9 * * 1-5", timezone: Mars/Olympus}
          - {type: webhook, cron: "0 9 * * *"}
        steps: [{id: done, type: output}]
    """)
    assert found == [
        "wf.yaml:7:28: error: trigger 1 has an invalid cron expression '61 * * * *'; use five "
        "fields 'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'",
        "wf.yaml:8:5: error: trigger 2 input does not satisfy the workflow's input schema: "
        "input: 'email' is a required property",
        "wf.yaml:8:53: error: trigger 2 has an unknown time zone 'Mars/Olympus'; use an IANA name "
        "such as UTC or Europe/Paris",
        "wf.yaml:9:5: error: trigger 3 input does not satisfy the workflow's input schema: "
        "input: 'email' is a required property",
        "wf.yaml:9:12: error: 'type' in trigger 3 must be schedule (got 'webhook')",
    ]


def test_input_must_be_a_valid_json_schema():
    assert problems("""
        id: demo
        version: 1
        input:
          type: object
          properties:
            email: {type: strin}
          required: email
        steps: [{id: done, type: output}]
    """) == [
        "wf.yaml:6:19: error: the input schema is not a valid JSON Schema at properties/email/type: "
        "'strin' is not valid under any of the given schemas",
        "wf.yaml:7:13: error: the input schema is not a valid JSON Schema at required: 'email' is not of type 'array'",
    ]


# ---------------------------------------------------------------- warnings


def test_wait_longer_than_the_sync_limit_or_the_timeout_warns():
    assert problems("""
        id: demo
        version: 1
        sync_timeout: 30s
        timeout: 1h
        steps:
          - {id: short, type: wait, duration: 20s}
          - {id: medium, type: wait, duration: 45s}
          - {id: long, type: wait, duration: {value: 2, unit: hours}}
    """) == [
        "wf.yaml:7:40: warning: wait step 'medium' waits 45s, longer than the sync limit (30s): "
        "sync calls hand off to async before it ends; call this workflow in async mode",
        "wf.yaml:8:38: warning: wait step 'long' waits 2h, longer than the workflow timeout (1h): "
        "every execution will time out during the wait; raise 'timeout'",
    ]


def test_default_sync_limit_is_sixty_seconds():
    found = step_problems("""
        - {id: a, type: wait, duration: 60}
        - {id: b, type: wait, duration: 61}
    """)
    assert found == [
        "wf.yaml:5:35: warning: wait step 'b' waits 61s, longer than the sync limit (1m): sync "
        "calls hand off to async before it ends; call this workflow in async mode"
    ]


def test_steps_after_output_or_fail_never_run():
    assert step_problems("""
        - id: route
          type: condition
          branches:
            - name: a
              when: "true"
              steps:
                - {id: stop, type: fail}
                - {id: unreachable, type: note}
        - {id: done, type: output}
        - {id: ghost, type: note}
    """) == [
        "wf.yaml:11:13: warning: note step 'unreachable' never runs: fail step 'stop' before it ends the execution",
        "wf.yaml:13:5: warning: note step 'ghost' never runs: output step 'done' before it ends the execution",
    ]


# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "text",
    [
        "id: [\n",
        "steps: [1, 'a', null, {type: condition, branches: [1, {steps: 3}]}]\nid: 5\nversion: x\n",
        'id: a\nversion: 1\nsteps:\n  - {id: c, type: code, code: "\\0"}\n',
        "id: a\nversion: 1\nsteps:\n  - {id: w, type: wait, duration: {value: -1}}\n",
        "id: a\nversion: 1\ninput: true\ntriggers: [{type: schedule, cron: 5}]\nsteps: [{type: 3}]\n",
        "&a id: x\nversion: 1\nbase: &b {id: n, type: note}\nsteps: [{<<: *b, id: m}]\n",
        "? [complex, key]\n: value\n",
        'id: a\nversion: 1\nsteps:\n  - id: o\n    type: output\n    fields: {x: \'{{ {"a": {"b": 1}} }}\'}\n',
        "\t- tab\n",
    ],
)
def test_bad_input_never_raises(text):
    checked = check_text(text, "wf.yaml")
    assert all(isinstance(problem, Problem) for problem in checked.problems)


# ---------------------------------------------------------------- many files


LIVE = """
id: {id}
version: {version}
status: {status}
steps:
  - {{id: hi, type: note}}
"""


def test_across_files_live_versions_duplicates_and_called_workflows(tmp_path):
    write(tmp_path, "a1.yaml", LIVE.format(id="alpha", version=1, status="live"))
    write(tmp_path, "a2.yaml", LIVE.format(id="alpha", version=2, status="live"))
    write(tmp_path, "nested/a2_copy.yml", LIVE.format(id="alpha", version=2, status="draft"))
    write(tmp_path, "b1.yaml", LIVE.format(id="beta", version=1, status="draft"))
    write(
        tmp_path,
        "caller.yaml",
        """
        id: caller
        version: 1
        status: live
        steps:
          - {id: one, type: workflow, workflow_id: alpha, version: 7}
          - {id: two, type: workflow, workflow_id: gamma}
          - {id: three, type: workflow, workflow_id: beta}
          - {id: four, type: workflow, workflow_id: beta, version: 1}
          - {id: five, type: workflow, workflow_id: alpha}
    """,
    )
    found = [str(problem) for problem in validate_paths([tmp_path])]
    base = str(tmp_path)
    assert found == [
        f"{base}/a1.yaml:3:9: error: workflow 'alpha' has more than one live version: version 2 "
        f"in {base}/a2.yaml is live; set this one to published",
        f"{base}/caller.yaml:5:60: error: workflow step 'one' calls workflow 'alpha' version 7, "
        f"which does not exist; it has versions 1 (live), 2 (draft), 2 (live)",
        f"{base}/caller.yaml:6:44: error: workflow step 'two' calls unknown workflow 'gamma'; "
        f"known workflows: alpha, beta, caller",
        f"{base}/caller.yaml:7:46: error: workflow step 'three' calls workflow 'beta' at 'latest', "
        f"but it has no live or published version (versions: 1 (draft))",
        f"{base}/caller.yaml:8:60: warning: workflow step 'four' calls draft version 1 of 'beta'; "
        f"drafts may change and run only when pinned from the CLI or TUI",
        f"{base}/nested/a2_copy.yml:2:10: error: workflow 'alpha' version 2 is already defined in "
        f"{base}/a2.yaml; give this file the next free version number",
    ]


def test_all_problems_of_all_files_sorted_and_missing_paths(tmp_path):
    write(tmp_path, "b.yaml", "id: b\nversion: 1\nsteps: [{id: x, type: http}]\n")
    write(tmp_path, "a.yaml", "id: a\nversion: 1\nsteps: [{id: x, type: note, txt: 1}, {id: x, type: note}]\n")
    write(tmp_path, "notes.txt", "not a definition")
    found = [str(problem) for problem in validate_paths([tmp_path / "b.yaml", tmp_path, tmp_path / "nope"])]
    base = str(tmp_path)
    assert found == [
        f"{base}/a.yaml:3:29: error: unknown key 'txt' in note step 'x' (did you mean 'text'?)",
        f"{base}/a.yaml:3:43: error: duplicate step id 'x' (also used at line 3); step ids are "
        f"unique in the whole workflow",
        f"{base}/b.yaml:3:9: error: missing required key 'url' in http step 'x'",
        f"{base}/nope:1:1: error: no such file or directory",
    ]


def test_the_examples_have_no_errors():
    found = validate_paths([EXAMPLE_DEFINITIONS])
    assert [str(problem) for problem in found if problem.is_error] == []
    # the follow-up is meant for async mode; validation says so
    assert [problem.message.split(",")[0] for problem in found] == ["wait step 'let_them_breathe' waits 15m"]


def test_broken_fixtures_report_every_problem():
    found = [str(problem) for problem in validate_paths([ROOT / "tests" / "fixtures" / "broken"])]
    assert len(found) == 8
    assert all(": error: " in line for line in found)
