"""The authoring commands: test, graph, eval, new, version new, promote (flowdeck.authoring).

None of them needs Prefect, except `eval --execution`, which reads a past execution.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from flowdeck import settings
from flowdeck.cli.common import DefinitionsOption, err, fail, failed, out, print_json
from flowdeck.errors import FlowdeckError

if TYPE_CHECKING:
    from flowdeck.authoring.lifecycle import Change
    from flowdeck.definition.catalog import Catalog


def run_tests(
    paths: list[Path] = typer.Argument(None, help="Test files or directories (default: the definitions directory)."),
    keyword: str | None = typer.Option(None, "-k", help="Only the cases whose name contains this (any case)."),
    junit_xml: Path | None = typer.Option(None, "--junit-xml", help="Also write a JUnit XML report here (for CI)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of text."),
    allow_network: bool = typer.Option(False, "--allow-network", help="Send requests no `http` answer matches."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Run the workflow tests (*.test.yaml) offline: exit 0 all pass, 1 a case failed, 2 a file does not load."""
    from flowdeck.authoring import report as reporting
    from flowdeck.authoring.suite import CaseReport, SuiteReport, load_files, run_suite, select
    from flowdeck.authoring.testfile import is_test_file
    from flowdeck.definition.catalog import load_catalog

    root = definitions or settings.definitions_dir()
    targets = list(paths or [root])
    missing = [str(path) for path in targets if not path.exists()]
    if missing:
        raise fail(f"no such file or directory: {', '.join(missing)}")
    not_tests = [str(path) for path in targets if path.is_file() and not is_test_file(path)]
    if not_tests:
        raise fail(f"not a test file: {', '.join(not_tests)} (test files are named *.test.yaml)")
    started = time.perf_counter()
    catalog = load_catalog(root)
    loaded, problems = load_files(targets, catalog)
    chosen = select(loaded, keyword)
    if not chosen and not problems:
        where = ", ".join(map(str, targets))
        raise fail(
            f"no test case matches -k {keyword!r} in {where}"
            if keyword and loaded
            else f"no *.test.yaml files under {where}; `flowdeck new` writes one with each workflow"
        )

    def progress(case: CaseReport) -> None:
        if not as_json:
            sys.stdout.write(reporting.progress_mark(case))
            sys.stdout.flush()

    cases = asyncio.run(run_suite(chosen, catalog, allow_network=allow_network, on_case=progress))
    suite = SuiteReport(cases=cases, problems=problems, seconds=time.perf_counter() - started)
    if junit_xml is not None:
        try:
            junit_xml.write_text(reporting.junit_xml(suite), encoding="utf-8")
        except OSError as error:
            raise fail(f"cannot write --junit-xml {junit_xml}: {error.strerror or error}") from None
    if as_json:
        print_json(reporting.json_report(suite))
    else:
        sys.stdout.write(("\n" if cases else "") + reporting.text_report(suite) + "\n")
    raise typer.Exit(suite.exit_code)


def graph(
    workflow_id: str = typer.Argument(..., help="The workflow id."),
    version: str = typer.Option("latest", "--version", "-v", help="'latest' or a version number (drafts included)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text, mermaid (GitHub/GitLab markdown) or dot (Graphviz)."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """The structure of a workflow: steps in order, branches and their conditions, waits, calls."""
    from flowdeck.authoring.graph import FORMATS, render
    from flowdeck.definition.catalog import load_catalog

    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        definition = load_catalog(definitions).resolve(workflow_id, version, allow_draft=True)
    except FlowdeckError as error:
        raise failed(error) from None
    sys.stdout.write(render(definition, fmt) + "\n")


def eval_expression(
    expression: str | None = typer.Argument(None, help="A `{{ }}` template or a bare JSONata expression."),
    ctx_file: Path | None = typer.Option(None, "--ctx", help="The context: a JSON (or YAML) file."),
    execution_id: str | None = typer.Option(None, "--execution", help="The context a past execution recorded."),
    case: str | None = typer.Option(None, "--case", help="TEST_FILE:NAME: the context a test case builds."),
    repl: bool = typer.Option(False, "--repl", help="An interactive prompt (with history) on that context."),
    as_json: bool = typer.Option(False, "--json", help="Print only the value, as JSON."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Evaluate an expression with the engine's evaluator and print the typed value."""
    from flowdeck.authoring import evaluate as evaluating

    if sum(source is not None for source in (ctx_file, execution_id, case)) > 1:
        raise fail("give at most one of --ctx, --execution and --case")
    if expression is None and not repl:
        raise fail("give an EXPRESSION, or --repl for a prompt")
    try:
        if ctx_file is not None:
            ctx = evaluating.context_from_file(ctx_file)
        elif case is not None:
            from flowdeck.definition.catalog import load_catalog

            ctx = evaluating.context_of_case(case, load_catalog(definitions))
        elif execution_id is not None:
            ctx = _context_of_execution(execution_id, definitions)
        else:
            ctx = dict(evaluating.EMPTY_CONTEXT)
        if expression is not None:
            value = evaluating.evaluate(expression, ctx)
            if as_json:
                print_json(value)
            else:
                sys.stdout.write(evaluating.show(value) + "\n")
    except FlowdeckError as error:
        raise failed(error) from None
    if repl:
        from flowdeck.authoring.prompt import run_prompt

        run_prompt(ctx, settings.home() / "eval_history")


def _context_of_execution(execution_id: str, definitions: Path | None) -> dict[str, Any]:
    """ctx as the execution had it: input, trigger, execution, and each finished step's output."""
    from flowdeck.cli.common import with_engine

    async def read(engine: Any) -> dict[str, Any]:
        from flowdeck.store.read_model import execution_detail

        view = await execution_detail(engine.api, execution_id, engine.outbox)
        ctx: dict[str, Any] = {
            "input": view.input_data,
            "trigger": view.trigger,
            "execution": {
                "id": execution_id,
                "workflow_id": view.body.get("workflow_id"),
                "version": view.body.get("workflow_version"),
                "mode": view.body.get("mode"),
            },
        }
        unrecorded = []
        for step in view.steps:
            if "." in step.key:  # a called workflow's step: not in this context
                continue
            if step.has_output:
                ctx[step.key] = ctx[step.name] = step.output
            elif step.status == "success":
                unrecorded.append(step.key)
        if unrecorded:
            err.print(
                f"note: no recorded output for {', '.join(unrecorded)} (its journal entry is missing or "
                "unreadable): they read as missing",
                highlight=False,
                soft_wrap=True,
            )
        return ctx

    result: dict[str, Any] = with_engine(read, definitions)
    return result


def new_workflow(
    workflow_id: str = typer.Argument(..., help="The new workflow's id (lower case, digits, '_')."),
    template: str = typer.Option("http", "--template", "-t", help="http, branching or follow-up."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Start a workflow: a draft definition with the schema modeline, and a test file that passes."""
    from flowdeck.authoring.scaffold import new_workflow as scaffold

    root = definitions or settings.definitions_dir()
    _apply(lambda catalog: scaffold(catalog, root, workflow_id, template), root)
    out.print(f"next: edit {root / (workflow_id + '.yaml')}, then `flowdeck test`", highlight=False, soft_wrap=True)


def version_new(
    workflow_id: str = typer.Argument(..., help="The workflow id."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Copy the highest version of a workflow to the next version number, as a draft."""
    from flowdeck.authoring.lifecycle import next_version

    _apply(lambda catalog: [next_version(catalog, workflow_id)], definitions)


def promote(
    workflow_id: str = typer.Argument(..., help="The workflow id."),
    version: int = typer.Argument(..., help="The version number to promote."),
    to: str = typer.Option(..., "--to", help="published or live (live turns the live version into published)."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Change a version's status in its file (comments and formatting kept)."""
    from flowdeck.authoring.lifecycle import promote as promotion

    _apply(lambda catalog: promotion(catalog, workflow_id, version, to), definitions)


def freeze(definitions: Path | None = DefinitionsOption) -> None:
    """Record every published and live version in versions.lock (validate then refuses changes to them)."""
    from flowdeck.authoring.lifecycle import freeze as freezing

    planned: list[Change] = []

    def plan(catalog: Catalog) -> list[Change]:
        planned.extend(freezing(catalog))
        return planned

    _apply(plan, definitions)
    if not planned:
        out.print("every published and live version is already recorded in versions.lock", highlight=False)


def _apply(plan: Callable[[Catalog], list[Change]], definitions: Path | None) -> None:
    """Plan the edits on the catalog, write them all, print what changed; refusals exit 2."""
    from flowdeck.authoring.lifecycle import write
    from flowdeck.definition.catalog import load_catalog

    try:
        changes = plan(load_catalog(definitions))
        write(changes)
    except FlowdeckError as error:
        raise failed(error) from None
    except OSError as error:
        raise fail(f"cannot write {error.filename}: {error.strerror or error}") from None
    for change in changes:
        out.print(change.summary, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the authoring commands to `app` (flowdeck.cli.app), in the order --help lists them."""
    app.command("test")(run_tests)
    app.command("graph")(graph)
    app.command("eval")(eval_expression)
    app.command("new")(new_workflow)
    version_app = typer.Typer(help="The versions of a workflow: start the next one.")
    version_app.command("new")(version_new)
    app.add_typer(version_app, name="version")
    app.command("promote")(promote)
    app.command("freeze")(freeze)


__all__ = ["register", "run_tests", "graph", "eval_expression", "new_workflow", "version_new", "promote", "freeze"]
