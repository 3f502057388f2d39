"""The `flowdeck` command.

Prefect reads its settings when it is imported, so every command that talks to Prefect
first settles the environment (`prefect_server.configure_environment`) and only then
imports the engine. Errors a user can cause print one clear line and exit 2 (nothing was
started) or 1 (the execution failed); a traceback is always a flowdeck bug.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from flowdeck.local import prefect_server
from flowdeck.errors import ConfigurationError, FlowdeckError, NotFound, PrefectUnavailable

app = typer.Typer(
    help="YAML workflows for voice and chat agents, run on Prefect.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
server_app = typer.Typer(help="The local Prefect server flowdeck runs when PREFECT_API_URL is unset.")
app.add_typer(server_app, name="server")
storage_app = typer.Typer(help="Where outputs and step journals live (Prefect's default result storage).")
app.add_typer(storage_app, name="storage")
services_app = typer.Typer(help="Background services of the dashboard: local Prefect server and worker.")
app.add_typer(services_app, name="services")

out = Console()
err = Console(stderr=True)

DefinitionsOption = typer.Option(
    None, "--definitions", "-d", envvar="FLOWDECK_DEFINITIONS", help="Definitions directory (default ./definitions)."
)


def _fail(message: str, code: int = 2) -> "typer.Exit":
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _engine(definitions: Optional[Path], catalog: Any = None):  # type: ignore[no-untyped-def]
    """Connect to Prefect (starting the local server if needed), then load the engine."""
    try:
        prefect_server.configure_environment()
    except PrefectUnavailable as error:
        raise _fail(str(error), 3) from None
    from flowdeck.execution.service import Flowdeck

    engine = Flowdeck.open(definitions, catalog=catalog)
    return engine


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """Without a command: open the dashboard (`flowdeck tui`)."""
    if ctx.invoked_subcommand is None:
        from flowdeck.tui.main import run_dashboard

        raise typer.Exit(run_dashboard())


KeepServicesOption = typer.Option(
    None, "--keep-services/--stop-services",
    help="On quit, keep (or stop) the server and worker this session started; default: ask.",
)


@app.command()
def tui(definitions: Optional[Path] = DefinitionsOption, keep_services: Optional[bool] = KeepServicesOption) -> None:
    """The dashboard: workflows, live executions, launch, detail (also `flowdeck` alone)."""
    from flowdeck.tui.main import run_dashboard

    raise typer.Exit(run_dashboard(definitions, keep_services=keep_services))


@app.command()
def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    definitions: Optional[Path] = DefinitionsOption,
) -> None:
    """Serve the dashboard to a browser (textual-serve)."""
    from flowdeck.tui.main import serve_web

    try:
        serve_web(host, port, definitions)
    except PrefectUnavailable as error:
        raise _fail(str(error), 3) from None


@services_app.command("status")
def services_status() -> None:
    """The local Prefect server and the background worker `flowdeck` starts."""
    from flowdeck.local import services as local_services

    server, worker = local_services.status()
    out.print(f"server: {'up' if server.healthy else 'down'} {server.api_url}" + (f" pid {server.pid}" if server.pid else ""), highlight=False)
    out.print(f"worker: {'running pid ' + str(worker.pid) if worker.running else 'not running'} (log {worker.log_file})", highlight=False)


@services_app.command("stop")
def services_stop(worker_only: bool = typer.Option(False, "--worker-only", help="Leave the server running.")) -> None:
    """Stop the background worker and the local Prefect server."""
    from flowdeck.local import services as local_services

    stopped = local_services.stop(server=not worker_only)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def validate(
    paths: list[Path] = typer.Argument(None, help="Files or directories (default: the definitions directory)."),
    definitions: Optional[Path] = DefinitionsOption,
) -> None:
    """Check definitions: every problem of every file, as PATH:LINE:COL: error: MESSAGE."""
    from flowdeck import settings
    from flowdeck.definition.catalog import validate_paths

    targets = list(paths or [definitions or settings.definitions_dir()])
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise _fail(f"no such file or directory: {', '.join(map(str, missing))}")
    problems = validate_paths(targets)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    summary = f"{errors} error(s), {warnings} warning(s)"
    err.print(summary if errors else f"ok: {summary}", highlight=False)
    raise typer.Exit(1 if errors else 0)


@app.command("list")
def list_workflows(
    definitions: Optional[Path] = DefinitionsOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every workflow with its versions and statuses."""
    from flowdeck.definition.catalog import load_catalog

    catalog = load_catalog(definitions)
    rows = []
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
        _print_json({"workflows": rows, "invalid_files": [str(f.path) for f in broken]})
        return
    table = Table("workflow", "version", "status", "name", "file")
    for row in rows:
        table.add_row(row["workflow_id"], str(row["version"]), row["status"], row["name"], str(row["path"]))
    out.print(table)
    for file in broken:
        err.print(f"[yellow]invalid:[/] {file.path} (run `flowdeck validate {file.path}`)", highlight=False)


@app.command()
def run(
    workflow_id: str = typer.Argument(..., help="The workflow id."),
    version: str = typer.Option("latest", "--version", "-v", help="'latest' or a version number."),
    input_json: Optional[str] = typer.Option(None, "--input", "-i", help="input_data as a JSON object."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="A file holding input_data JSON."),
    run_async: bool = typer.Option(False, "--async", help="Start in async mode and return the execution id."),
    idempotency_key: Optional[str] = typer.Option(None, "--idempotency-key", help="Same key within 24 h: same execution."),
    as_json: bool = typer.Option(False, "--json", help="Print the response body as JSON."),
    definitions: Optional[Path] = DefinitionsOption,
) -> None:
    """Run a workflow (sync by default: wait for its output)."""
    from flowdeck.runtime.inputs import parse_input

    try:
        if input_file is not None:
            try:
                text = input_file.read_text()
            except OSError as error:
                raise _fail(f"cannot read --input-file {input_file}: {error.strerror}") from None
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
        raise _fail(error.message) from None

    engine = _engine(definitions, catalog)

    from flowdeck.store.recording import flush_events

    async def go() -> dict[str, Any]:
        async with engine:
            if run_async:
                from flowdeck.execution.submission import submit

                return await submit(engine, definition, input_data, idempotency_key=idempotency_key)
            call = await engine.run_sync(workflow_id, version, input_data, allow_draft=True)
            _show_body(call.body, as_json)
            await call.finish()
            await flush_events()
            return call.body

    try:
        body = asyncio.run(go())
    except FlowdeckError as error:
        raise _fail(error.message, 3 if isinstance(error, PrefectUnavailable) else 2) from None
    if run_async:
        _show_body(body, as_json)
    raise typer.Exit(1 if body["status"] == "failed" else 0)


def _show_body(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
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
    sys.stdout.flush()


@app.command()
def status(
    execution_id: str = typer.Argument(..., help="exec_<32 hex>"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Status of an execution (sync or async)."""
    engine = _engine(None)

    async def go() -> dict[str, Any]:
        async with engine:
            return await engine.status(execution_id)

    try:
        body = asyncio.run(go())
    except NotFound as error:
        raise _fail(error.message, 2) from None
    except FlowdeckError as error:
        raise _fail(error.message, 3) from None
    if as_json:
        _print_json(body)
        return
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        if value is None:
            continue
        table.add_row(f"[bold]{key}[/]", json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    out.print(table)


@app.command()
def executions(
    workflow_id: Optional[str] = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    status_filter: Optional[list[str]] = typer.Option(None, "--status", "-s", help="pending, running, waiting, success, failed, cancelled (repeatable)."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent executions, newest first."""
    engine = _engine(None)

    async def go() -> list[dict[str, Any]]:
        async with engine:
            return await engine.recent_executions(limit=limit, workflow_id=workflow_id, statuses=status_filter or None)

    try:
        rows = asyncio.run(go())
    except FlowdeckError as error:
        raise _fail(error.message, 3) from None
    if as_json:
        _print_json(rows)
        return
    table = Table(Column("execution", no_wrap=True, min_width=37), "workflow", "mode", "status", "created")
    for row in rows:
        table.add_row(row["execution_id"], f"{row['workflow_id']}@{row['workflow_version']}", str(row["mode"]),
                      row["status"], str(row["created_at"])[:19])
    out.print(table)


@app.command()
def cancel(
    execution_id: str = typer.Argument(..., help="exec_<32 hex>"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a pending, running or waiting execution: no further step runs."""
    engine = _engine(None)

    async def go() -> dict[str, Any]:
        async with engine:
            answer = await engine.cancel(execution_id)
            # A running execution stops at its worker within moments: report the end state.
            for _ in range(50):
                body = await engine.status(execution_id)
                if body["status"] != "running":
                    return body
                await asyncio.sleep(0.1)
            return {**body, "status": answer["status"]}

    try:
        body = asyncio.run(go())
    except NotFound as error:
        raise _fail(error.message, 2) from None
    except FlowdeckError as error:
        raise _fail(error.message, 1) from None
    if as_json:
        _print_json({"status": body["status"], "execution_id": execution_id})
    else:
        out.print(f"{body['status']}  {execution_id}", highlight=False)


@app.command()
def worker(
    definitions: Optional[Path] = DefinitionsOption,
    concurrency: int = typer.Option(100, "--concurrency", help="Executions run at once by this worker."),
) -> None:
    """Execute async work: every published and live version, from this process."""
    engine = _engine(definitions)
    import logging

    from flowdeck.execution.worker import Worker, WorkerSettings

    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s", level=logging.INFO)
    logging.getLogger("flowdeck").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    settings = WorkerSettings.from_env()
    settings.concurrency = concurrency
    node = Worker(engine=engine, settings=settings, project_dir=Path.cwd())

    async def go() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, node.stop)
        ready = asyncio.Event()
        serving = asyncio.create_task(node.run(ready))
        await ready.wait()
        print(
            f"worker {node.name} serving {len(engine.catalog.definitions)} definition(s) "
            f"from {os.environ.get('PREFECT_API_URL')} (ctrl+c to stop)",
            file=sys.stderr,
            flush=True,
        )
        await serving
        await engine.aclose()
        print(f"worker {node.name} stopped: executed {node.executed} execution(s)", file=sys.stderr, flush=True)

    try:
        asyncio.run(go())
    except FlowdeckError as error:
        raise _fail(error.message, 3) from None


@app.command()
def deploy(
    definitions: Optional[Path] = DefinitionsOption,
    write_prefect_yaml: bool = typer.Option(False, "--write-prefect-yaml", help="Also rewrite prefect.yaml."),
) -> None:
    """Create/update the Prefect deployment of every published and live version."""
    engine = _engine(definitions)
    from flowdeck.store.deployments import deployed, prefect_yaml, sync_deployments

    async def go() -> dict[str, Any]:
        async with engine:
            return await sync_deployments(engine.api, engine.catalog.definitions, Path.cwd())

    try:
        ids = asyncio.run(go())
    except FlowdeckError as error:
        raise _fail(error.message, 3) from None
    for key, deployment in sorted(ids.items()):
        out.print(f"deployed {key}  ({deployment})", highlight=False)
    if write_prefect_yaml:
        Path("prefect.yaml").write_text(prefect_yaml(deployed(engine.catalog.definitions)))
        out.print("wrote prefect.yaml")


@app.command("prefect-yaml")
def prefect_yaml_command(
    definitions: Optional[Path] = DefinitionsOption,
    output: Path = typer.Option(Path("prefect.yaml"), "--output", "-o", help="Where to write it."),
    check: bool = typer.Option(False, "--check", help="Only check that the file is up to date (exit 1 if not)."),
) -> None:
    """Write prefect.yaml: the same deployments, for `prefect deploy --all` with work pools."""
    from flowdeck.definition.catalog import load_catalog
    from flowdeck.store.deployments import deployed, prefect_yaml

    catalog = load_catalog(definitions)
    if catalog.has_errors:
        raise _fail("definitions have errors; run `flowdeck validate` first", 1)
    text = prefect_yaml(deployed(catalog.definitions))
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            raise _fail(f"{output} is out of date with the definitions; run `flowdeck prefect-yaml`", 1)
        out.print(f"{output} is up to date", highlight=False)
        return
    output.write_text(text)
    out.print(f"wrote {output} ({len(deployed(catalog.definitions))} deployments)", highlight=False)


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8700, "--port", help="Port to listen on."),
    insecure_dev: bool = typer.Option(
        False, "--insecure-dev", help="Local development only: start without any API token (no authentication)."
    ),
    definitions: Optional[Path] = DefinitionsOption,
) -> None:
    """Serve the HTTP API: sync and async executions, webhooks, agent tools (docs at /docs)."""
    from flowdeck.api.auth import NoTokens, load_tokens, require_tokens

    tokens = load_tokens()
    try:
        require_tokens(tokens, insecure_dev)
    except NoTokens as error:
        raise _fail(error.message) from None
    try:
        prefect_server.configure_environment()
    except PrefectUnavailable as error:
        raise _fail(str(error), 3) from None
    import uvicorn

    from flowdeck.api import create_app

    application = create_app(definitions=definitions, tokens=tokens, insecure_dev=insecure_dev)
    if not tokens:
        err.print("[bold yellow]warning:[/] --insecure-dev: no API token, anyone who can connect can run workflows")
    err.print(f"flowdeck API on http://{host}:{port} (docs: http://{host}:{port}/docs)", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


@server_app.command("start")
def server_start(
    database: Optional[str] = typer.Option(
        None, "--database", envvar="FLOWDECK_DATABASE_URL",
        help="PostgreSQL for the server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/prefect (default: SQLite under FLOWDECK_HOME)",
    ),
    redis: Optional[str] = typer.Option(
        None, "--redis", envvar="FLOWDECK_REDIS_URL",
        help="Redis for Prefect's messaging (prefect-redis), e.g. redis://127.0.0.1:6379/0",
    ),
    api_processes: int = typer.Option(
        1, "--api-processes", envvar="FLOWDECK_SERVER_API_PROCESSES",
        help="API processes (more than 1 needs --database postgresql... and --redis)",
    ),
) -> None:
    """Start the local Prefect server (detached; reused by every flowdeck command)."""
    topology = prefect_server.Topology(database, redis, api_processes)
    try:
        state = prefect_server.start(topology=topology)
    except (PrefectUnavailable, ConfigurationError) as error:
        raise _fail(str(error), 2 if isinstance(error, ConfigurationError) else 3) from None
    out.print(f"Prefect server running at {state.api_url} (pid {state.pid}, database {state.database})", highlight=False)
    out.print(f"UI: {state.api_url.removesuffix('/api')}", highlight=False)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server."""
    stopped = prefect_server.stop()
    out.print("stopped" if stopped else "no local server was running")


@server_app.command("status")
def server_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Is the Prefect server up, and which one is used."""
    state = prefect_server.status()
    if as_json:
        _print_json(state.__dict__)
    else:
        health = "[green]up[/]" if state.healthy else "[red]down[/]"
        kind = "local (flowdeck-managed)" if state.managed else "external (PREFECT_API_URL)"
        out.print(f"{health} {state.api_url} {kind}" + (f" pid {state.pid}" if state.pid else ""))
    raise typer.Exit(0 if state.healthy else 1)


def _storage_call(call: Any, verb: str) -> Any:
    """Run a result-storage coroutine against Prefect; every failure is a message, exit 2
    for what the user gave, 3 for Prefect."""
    try:
        prefect_server.configure_environment()
        return asyncio.run(call())
    except (ConfigurationError, NotFound) as error:
        raise _fail(str(error), 2) from None
    except FlowdeckError as error:
        raise _fail(str(error), 3) from None
    except Exception as error:  # Prefect's client: connection refused, HTTP errors
        raise _fail(f"could not {verb} the result storage in Prefect ({os.environ.get('PREFECT_API_URL')}): {error}", 3) from None


@storage_app.command("show")
def storage_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """The result storage every flowdeck process of this Prefect server uses."""
    from flowdeck.store import result_storage

    setting = _storage_call(result_storage.show, "read")
    if as_json:
        _print_json({"block": setting.block, "block_id": setting.block_id})
    else:
        out.print(setting.describe(), highlight=False)


@storage_app.command("set")
def storage_set(
    target: str = typer.Argument(..., help="redis://HOST:PORT/DB, or BLOCK-TYPE/NAME of a saved storage block"),
) -> None:
    """Share outputs between machines: make a storage block the server's default result storage.

    Run it once, before starting workers and API processes (each reads it at start)."""
    from flowdeck.store import result_storage

    setting = _storage_call(lambda: result_storage.set_default(target), "set")
    out.print(f"result storage: {setting.describe()}", highlight=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
