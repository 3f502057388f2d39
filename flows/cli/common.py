"""What every command shares: the consoles, the `--definitions` option, failing with a
message, JSON output, and connecting to Prefect before the engine is imported.

A FlowdeckError a user can cause ends the command with one clear line and the error class's
`exit_code` (flowdeck.errors: 1 failed, 2 nothing was started, 3 Prefect cannot be reached);
a traceback is always a flowdeck bug.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from flowdeck import settings
from flowdeck.errors import FlowdeckError, PrefectUnavailable
from flowdeck.local import prefect_server

if TYPE_CHECKING:
    from flowdeck.definition.catalog import Catalog
    from flowdeck.execution.service import Flowdeck

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

DefinitionsOption = typer.Option(
    None,
    "--definitions",
    "-d",
    envvar=settings.DEFINITIONS_VARIABLE,
    help="Definitions directory (default ./definitions).",
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` on stderr; the caller raises the returned Exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def failed(error: FlowdeckError) -> typer.Exit:
    """`fail` with the error's message and its class's exit code."""
    return fail(error.message, error.exit_code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def connect() -> None:
    """Point this process at Prefect (starting the local server if needed); before the
    engine (and so prefect) is imported."""
    try:
        prefect_server.configure_environment()
    except PrefectUnavailable as error:
        raise failed(error) from None


def engine(definitions: Path | None, catalog: Catalog | None = None) -> Flowdeck:
    """Connect to Prefect, then load the engine."""
    connect()
    from flowdeck.execution.service import Flowdeck

    return Flowdeck.open(definitions, catalog=catalog)


def with_engine(
    work: Callable[[Flowdeck], Awaitable[T]], definitions: Path | None = None, catalog: Catalog | None = None
) -> T:
    """Connect, open the engine, run `work(engine)` inside it and close it; a FlowdeckError
    ends the command (`failed`)."""
    opened = engine(definitions, catalog)

    async def go() -> T:
        async with opened:
            return await work(opened)

    try:
        return asyncio.run(go())
    except FlowdeckError as error:
        raise failed(error) from None
