"""The authoring commands: test, graph, eval, new, version new, promote (flowdeck.authoring).

None of them needs Prefect, except `eval --execution`, which reads a past execution.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import typer

from flowdeck import settings
from flowdeck.cli.common import DefinitionsOption, fail, failed, out, print_json
from flowdeck.errors import FlowdeckError


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
    from flowdeck.authoring.suite import SuiteReport, load_files, run_suite, select
    from flowdeck.definition.catalog import load_catalog

    root = definitions or settings.definitions_dir()
    targets = list(paths or [root])
    missing = [str(path) for path in targets if not path.exists()]
    if missing:
        raise fail(f"no such file or directory: {', '.join(missing)}")
    started = time.perf_counter()
    catalog = load_catalog(root)
    loaded, problems = load_files(targets, catalog)
    chosen = select(loaded, keyword)
    if not chosen and not problems:
        where = ", ".join(map(str, targets))
        raise fail(f"no test case matches -k {keyword!r} in {where}" if keyword and loaded
                   else f"no *.test.yaml files under {where}; `flowdeck new` writes one with each workflow")

    def progress(case: reporting.CaseReport) -> None:
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


def _fail_on(error: FlowdeckError) -> typer.Exit:
    return failed(error)


__all__ = ["run_tests", "out"]
