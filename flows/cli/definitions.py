"""Commands on the definitions themselves: validate, list, deploy, prefect-yaml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table

from flowdeck import settings
from flowdeck.cli.common import DefinitionsOption, err, fail, out, print_json, with_engine

if TYPE_CHECKING:
    from flowdeck.definition.model import WorkflowDefinition
    from flowdeck.execution.service import Flowdeck


def validate(
    paths: list[Path] = typer.Argument(None, help="Files or directories (default: the definitions directory)."),
    definitions: Path | None = DefinitionsOption,
    fmt: str = typer.Option("text", "--format", "-f", help="text, json, or github (Actions annotations)."),
) -> None:
    """Check definitions and test files: every problem of every file, as PATH:LINE:COL: error: MESSAGE."""
    from flowdeck.authoring import checks  # definitions and *.test.yaml files, in each format

    if fmt not in checks.FORMATS:
        raise fail(f"--format {fmt!r}: use one of {', '.join(checks.FORMATS)}")
    targets = list(paths or [definitions or settings.definitions_dir()])
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise fail(f"no such file or directory: {', '.join(map(str, missing))}")
    problems = checks.check_targets(targets)
    if problems or fmt == "json":
        print(checks.render(problems, fmt))
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    summary = f"{errors} error(s), {warnings} warning(s)"
    err.print(summary if errors else f"ok: {summary}", highlight=False)
    raise typer.Exit(1 if errors else 0)


def list_workflows(
    definitions: Path | None = DefinitionsOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every workflow with its versions and statuses."""
    from flowdeck.definition.catalog import load_catalog

    catalog = load_catalog(definitions)
    rows: list[dict[str, Any]] = []
    for workflow_id, versions in sorted(catalog.workflows().items()):
        for definition in versions:
            rows.append(
                {
                    "workflow_id": workflow_id,
                    "version": definition.version,
                    "status": definition.status,
                    "name": definition.name,
                    "path": definition.path,
                }
            )
    broken = [f for f in catalog.files if f.problems and any(p.severity == "error" for p in f.problems)]
    if as_json:
        print_json({"workflows": rows, "invalid_files": [str(f.path) for f in broken]})
        return
    table = Table("workflow", "version", "status", "name", Column("file", overflow="fold"))
    for row in rows:
        table.add_row(row["workflow_id"], str(row["version"]), row["status"], row["name"], str(row["path"]))
    # Into a pipe rich assumes 80 columns and would cut the paths: the table takes the room it needs.
    if out.is_terminal:
        out.print(table)
    else:
        from rich.console import Console

        Console(width=max(out.width, table_width(table))).print(table)
    for file in broken:
        err.print(f"[yellow]invalid:[/] {file.path} (run `flowdeck validate {file.path}`)", highlight=False)


def table_width(table: Table) -> int:
    """The width a table needs to show every cell whole."""
    from rich.console import Console
    from rich.measure import Measurement

    wide = Console(width=10_000)
    return Measurement.get(wide, wide.options, table).maximum


def deploy(
    definitions: Path | None = DefinitionsOption,
    write_prefect_yaml: bool = typer.Option(False, "--write-prefect-yaml", help="Also rewrite prefect.yaml."),
) -> None:
    """Create/update the Prefect deployment of every published and live version."""

    async def go(engine: Flowdeck) -> tuple[list[WorkflowDefinition], dict[str, Any]]:
        from flowdeck.store.deployments import sync_deployments

        return engine.catalog.definitions, await sync_deployments(engine.api, engine.catalog.definitions, Path.cwd())

    definitions_deployed, ids = with_engine(go, definitions)
    for key, deployment in sorted(ids.items()):
        out.print(f"deployed {key}  ({deployment})", highlight=False)
    if write_prefect_yaml:
        from flowdeck.store.deployments import deployed, prefect_yaml

        Path("prefect.yaml").write_text(prefect_yaml(deployed(definitions_deployed)))
        out.print("wrote prefect.yaml")


def prefect_yaml_command(
    definitions: Path | None = DefinitionsOption,
    output: Path = typer.Option(Path("prefect.yaml"), "--output", "-o", help="Where to write it."),
    check: bool = typer.Option(False, "--check", help="Only check that the file is up to date (exit 1 if not)."),
) -> None:
    """Write prefect.yaml: the same deployments, for `prefect deploy --all` with work pools."""
    from flowdeck.definition.catalog import load_catalog
    from flowdeck.store.deployments import deployed, prefect_yaml

    catalog = load_catalog(definitions)
    if catalog.has_errors:
        raise fail("definitions have errors; run `flowdeck validate` first", 1)
    text = prefect_yaml(deployed(catalog.definitions))
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            raise fail(f"{output} is out of date with the definitions; run `flowdeck prefect-yaml`", 1)
        out.print(f"{output} is up to date", highlight=False)
        return
    output.write_text(text)
    out.print(f"wrote {output} ({len(deployed(catalog.definitions))} deployments)", highlight=False)
