"""Commands on executions: run (sync or async), status, executions, cancel."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table

from flowdeck.cli.common import DefinitionsOption, fail, failed, out, print_json, with_engine
from flowdeck.errors import FlowdeckError

if TYPE_CHECKING:
    from flowdeck.execution.service import Flowdeck


def run(
    workflow_id: str = typer.Argument(..., help="The workflow id."),
    version: str = typer.Option("latest", "--version", "-v", help="'latest' or a version number."),
    input_json: str | None = typer.Option(None, "--input", "-i", help="input_data as a JSON object."),
    input_file: Path | None = typer.Option(None, "--input-file", help="A file holding input_data JSON."),
    run_async: bool = typer.Option(False, "--async", help="Start in async mode and return the execution id."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", help="Same key within 24 h: same execution."),
    as_json: bool = typer.Option(False, "--json", help="Print the response body as JSON."),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Run a workflow (sync by default: wait for its output)."""
    from flowdeck.runtime.inputs import parse_input

    try:
        if input_file is not None:
            try:
                text = input_file.read_bytes()  # parse_input says where it is not UTF-8
            except OSError as error:
                raise fail(f"cannot read --input-file {input_file}: {error.strerror}", as_json=as_json) from None
            input_data = parse_input(text, f"--input-file {input_file}")
        else:
            input_data = parse_input(input_json)
        from flowdeck.definition.catalog import load_catalog

        # Resolve and check the input before touching Prefect: nothing starts on bad input.
        catalog = load_catalog(definitions)
        definition = catalog.resolve(workflow_id, version, allow_draft=True)
        from flowdeck.runtime.inputs import validate_input

        validate_input(definition, input_data)
    except FlowdeckError as error:
        raise failed(error, as_json=as_json) from None

    async def go(engine: Flowdeck) -> dict[str, Any]:
        if run_async:
            from flowdeck.execution.submission import submit

            return await submit(engine, definition, input_data, idempotency_key=idempotency_key)
        from flowdeck.store.recording import flush_events

        call = await engine.run_sync(workflow_id, version, input_data, allow_draft=True)
        _show_body(call.body, as_json)
        await call.finish()
        await flush_events()
        return call.body

    body = with_engine(go, definitions, catalog, as_json=as_json)
    if run_async:
        _show_body(body, as_json)
    raise typer.Exit(1 if body["status"] == "failed" else 0)


def _show_body(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
        return
    status = body["status"]
    colour = {"success": "green", "failed": "red"}.get(status, "yellow")
    out.print(f"[bold {colour}]{status}[/]  {body['execution_id']}", highlight=False)
    if "output" in body:
        out.print_json(data=body["output"])
    if body.get("error"):
        error = body["error"]
        out.print(f"step [bold]{error.get('step_name')}[/]: {error.get('message')}", highlight=False)
    if status in ("running", "waiting", "pending"):
        extra = f" (resumes at {body['resume_at']})" if body.get("resume_at") else ""
        out.print(f"continues in async mode{extra}; poll with: flowdeck status {body['execution_id']}", highlight=False)
        out.print(f"watch it live: flowdeck tui --execution {body['execution_id']}", highlight=False)
    sys.stdout.flush()


def status(
    execution_id: str = typer.Argument(..., help="exec_<32 hex>"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Status of an execution (sync or async)."""
    body = with_engine(lambda engine: engine.status(execution_id), as_json=as_json)
    if as_json:
        print_json(body)
        return
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        if value is None:
            continue
        table.add_row(f"[bold]{key}[/]", json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    out.print(table)


def executions(
    workflow_id: str | None = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    status_filter: list[str] | None = typer.Option(
        None, "--status", "-s", help="pending, running, waiting, success, failed, cancelled (repeatable)."
    ),
    limit: int = typer.Option(20, "--limit", "-n", help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent executions, newest first."""
    rows = with_engine(
        lambda engine: engine.recent_executions(limit=limit, workflow_id=workflow_id, statuses=status_filter or None),
        as_json=as_json,
    )
    if as_json:
        print_json(rows)
        return
    table = Table(Column("execution", no_wrap=True, min_width=37), "workflow", "mode", "status", "created")
    for row in rows:
        table.add_row(
            row["execution_id"],
            f"{row['workflow_id']}@{row['workflow_version']}",
            str(row["mode"]),
            row["status"],
            str(row["created_at"])[:19],
        )
    out.print(table)


def cancel(
    execution_id: str = typer.Argument(..., help="exec_<32 hex>"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a pending, running or waiting execution: no further step runs."""

    async def go(engine: Flowdeck) -> dict[str, Any]:
        answer = await engine.cancel(execution_id)
        # A running execution stops at its worker within moments: report the end state.
        for _ in range(50):
            body = await engine.status(execution_id)
            if body["status"] != "running":
                return body
            await asyncio.sleep(0.1)
        return {**body, "status": answer["status"]}

    body = with_engine(go, as_json=as_json)
    if as_json:
        print_json({"status": body["status"], "execution_id": execution_id})
    else:
        out.print(f"{body['status']}  {execution_id}", highlight=False)
