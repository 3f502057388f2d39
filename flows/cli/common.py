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


def fail(message: str, code: int = 2, *, as_json: bool = False, error_code: str = "error") -> typer.Exit:
    """Print `error: message` on stderr; the caller raises the returned Exit.

    With `--json` the error is the API's envelope `{"error": {"code", "message", "details"}}`,
    on stderr too: stdout holds results only, so `... --json | jq` never parses an error as one.
    """
    if as_json:
        sys.stderr.write(json.dumps({"error": {"code": error_code, "message": message, "details": None}}) + "\n")
        sys.stderr.flush()
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def failed(error: FlowdeckError, *, as_json: bool = False) -> typer.Exit:
    """`fail` with the error's message, code and its class's exit code."""
    if as_json and error.details is not None:
        envelope = {"error": {"code": error.code, "message": error.message, "details": error.details}}
        sys.stderr.write(json.dumps(envelope, default=str) + "\n")
        sys.stderr.flush()
        return typer.Exit(error.exit_code)
    return fail(error.message, error.exit_code, as_json=as_json, error_code=error.code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def connect(*, as_json: bool = False) -> None:
    """Point this process at Prefect (starting the local server if needed); before the
    engine (and so prefect) is imported."""
    try:
        prefect_server.configure_environment()
    except PrefectUnavailable as error:
        raise failed(error, as_json=as_json) from None


def engine(definitions: Path | None, catalog: Catalog | None = None, *, as_json: bool = False) -> Flowdeck:
    """Connect to Prefect, then load the engine."""
    connect(as_json=as_json)
    from flowdeck.execution.service import Flowdeck

    return Flowdeck.open(definitions, catalog=catalog)


def with_engine(
    work: Callable[[Flowdeck], Awaitable[T]],
    definitions: Path | None = None,
    catalog: Catalog | None = None,
    *,
    as_json: bool = False,
) -> T:
    """Connect, open the engine, run `work(engine)` inside it and close it; a FlowdeckError
    ends the command (`failed`, as JSON for `--json`)."""
    opened = engine(definitions, catalog, as_json=as_json)

    async def go() -> T:
        async with opened:
            return await work(opened)

    try:
        return asyncio.run(go())
    except FlowdeckError as error:
        raise failed(error, as_json=as_json) from None
