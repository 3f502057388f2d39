"""The dashboard's commands: `flowdeck tui` (also `flowdeck` alone) and `flowdeck web`.

The dashboard is a surface of its own (flowdeck.tui, where Textual lives): the CLI only
launches it, through `dashboard()`, imported when one of these commands runs.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import typer

from flowdeck.cli.common import DefinitionsOption, failed
from flowdeck.errors import PrefectUnavailable

KeepServicesOption = typer.Option(
    None,
    "--keep-services/--stop-services",
    help="On quit, keep (or stop) the server and worker this session started; default: ask.",
)


def dashboard() -> ModuleType:
    """The dashboard's entry points (`run_dashboard`, `serve_web`), loaded on first use."""
    from flowdeck.tui import main

    return main


def open_by_default(ctx: typer.Context) -> None:
    """Without a command: open the dashboard (`flowdeck tui`)."""
    if ctx.invoked_subcommand is None:
        raise typer.Exit(dashboard().run_dashboard())


def tui(
    definitions: Path | None = DefinitionsOption,
    keep_services: bool | None = KeepServicesOption,
    execution: str | None = typer.Option(
        None, "--execution", "-e", help="Open straight on this execution's detail (exec_<32 hex>)."
    ),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Open with this workflow selected."),
) -> None:
    """The dashboard: workflows, live executions, launch, detail (also `flowdeck` alone)."""
    raise typer.Exit(
        dashboard().run_dashboard(
            definitions, keep_services=keep_services, open_execution=execution, open_workflow=workflow
        )
    )


def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Serve the dashboard to a browser (textual-serve)."""
    try:
        dashboard().serve_web(host, port, definitions)
    except PrefectUnavailable as error:
        raise failed(error) from None
