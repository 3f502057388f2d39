"""Commands that run or manage long-lived processes: the worker, the HTTP API, the local
Prefect server, and the background services the dashboard starts."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import typer

from flowdeck import settings
from flowdeck.cli.common import DefinitionsOption, connect, err, fail, failed, out, print_json
from flowdeck.cli.common import engine as engine_of
from flowdeck.errors import ConfigurationError, FlowdeckError, PrefectUnavailable
from flowdeck.local import prefect_server


def worker(
    definitions: Path | None = DefinitionsOption,
    concurrency: int = typer.Option(100, "--concurrency", help="Executions run at once by this worker."),
) -> None:
    """Execute async work: every published and live version, from this process."""
    engine = engine_of(definitions)
    import logging

    from flowdeck.execution.worker import Worker, WorkerSettings

    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s", level=logging.INFO)
    logging.getLogger("flowdeck").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    worker_settings = WorkerSettings.from_env()
    worker_settings.concurrency = concurrency
    node = Worker(engine=engine, settings=worker_settings, project_dir=Path.cwd())

    async def go() -> None:
        import signal

        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        serving = asyncio.create_task(node.run(ready))

        def stop() -> None:
            # Serving: finish the step boundary and hand running executions back. Still
            # starting (Prefect slow or unreachable): there is nothing to hand back.
            if ready.is_set():
                node.stop()
            else:
                serving.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        try:
            # A start that fails (Prefect unreachable) ends `serving` before `ready` is set.
            started = asyncio.create_task(ready.wait())
            await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if ready.is_set():
                print(
                    f"worker {node.name} serving {len(engine.catalog.definitions)} definition(s) "
                    f"from {os.environ.get('PREFECT_API_URL')} (ctrl+c to stop)",
                    file=sys.stderr,
                    flush=True,
                )
            try:
                await serving
            except asyncio.CancelledError:
                print(f"worker {node.name} stopped while starting", file=sys.stderr, flush=True)
                return
        finally:
            await engine.aclose()
        print(f"worker {node.name} stopped: executed {node.executed} execution(s)", file=sys.stderr, flush=True)

    try:
        asyncio.run(go())
    except FlowdeckError as error:
        raise failed(error) from None


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8700, "--port", help="Port to listen on."),
    insecure_dev: bool = typer.Option(
        False, "--insecure-dev", help="Local development only: start without any API token (no authentication)."
    ),
    definitions: Path | None = DefinitionsOption,
) -> None:
    """Serve the HTTP API: sync and async executions, webhooks, agent tools (docs at /docs)."""
    from flowdeck.api.auth import NoTokens, load_tokens, require_tokens

    tokens = load_tokens()
    try:
        require_tokens(tokens, insecure_dev)
    except NoTokens as error:
        raise failed(error) from None
    connect()
    import uvicorn

    from flowdeck.api import create_app

    application = create_app(definitions=definitions, tokens=tokens, insecure_dev=insecure_dev)
    if not tokens:
        err.print("[bold yellow]warning:[/] --insecure-dev: no API token, anyone who can connect can run workflows")
    err.print(f"flowdeck API on http://{host}:{port} (docs: http://{host}:{port}/docs)", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


def server_start(
    database: str | None = typer.Option(
        None,
        "--database",
        envvar=settings.DATABASE_URL_VARIABLE,
        help="PostgreSQL for the server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/prefect "
        "(default: SQLite under FLOWDECK_HOME)",
    ),
    redis: str | None = typer.Option(
        None,
        "--redis",
        envvar=settings.REDIS_URL_VARIABLE,
        help="Redis for Prefect's messaging (prefect-redis), e.g. redis://127.0.0.1:6379/0",
    ),
    api_processes: int = typer.Option(
        1,
        "--api-processes",
        envvar=settings.API_PROCESSES_VARIABLE,
        help="API processes (more than 1 needs --database postgresql... and --redis)",
    ),
) -> None:
    """Start the local Prefect server (detached; reused by every flowdeck command)."""
    topology = prefect_server.Topology(database, redis, api_processes)
    try:
        state = prefect_server.start(topology=topology)
    except (PrefectUnavailable, ConfigurationError) as error:
        raise failed(error) from None
    if state.foreign:
        raise fail(
            f"port {settings.server_port()} already answers, but not from flowdeck's server ({state.foreign}); "
            "stop that program or choose another port with FLOWDECK_SERVER_PORT",
            PrefectUnavailable.exit_code,
        )
    out.print(
        f"Prefect server running at {state.api_url} (pid {state.pid}, database {state.database})", highlight=False
    )
    _print_ui_hint(state)


def server_stop() -> None:
    """Stop the local Prefect server (exactly the one `flowdeck server status` reports)."""
    state = prefect_server.status()
    if not state.managed:
        raise fail(f"PREFECT_API_URL is {state.api_url}: flowdeck does not manage that server", 2)
    stopped = prefect_server.stop()
    if stopped:
        out.print(f"stopped the local Prefect server (pid {state.pid})" if state.pid else "stopped")
    elif state.foreign:
        out.print(
            f"no flowdeck server was running; {state.api_url} answers from {state.foreign}, left alone",
            highlight=False,
        )
    else:
        out.print("no local server was running")


def server_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Is the Prefect server up, and which one is used."""
    state = prefect_server.status()
    from flowdeck.store.outbox import Outbox

    backlog = Outbox.default().backlog()  # committed here, not yet written to Prefect
    if as_json:
        print_json({**state.__dict__, "ui_url": state.ui_url, "outbox": backlog})
    else:
        out.print(
            f"outbox: {backlog['executions']} executions not yet in Prefect"
            + (f" (oldest {backlog['oldest_age_s']:.1f} s)" if backlog["executions"] else ""),
            highlight=False,
        )
        health = "[green]up[/]" if state.healthy else "[red]down[/]"
        kind = "local (flowdeck-managed)" if state.managed else "external (PREFECT_API_URL)"
        out.print(f"{health} {state.api_url} {kind}" + (f" pid {state.pid}" if state.pid else ""))
        if state.foreign:
            out.print(
                f"[yellow]not flowdeck's server:[/] the port answers from {state.foreign}; "
                "`flowdeck server stop` leaves it alone",
                highlight=False,
            )
        elif state.managed and state.healthy:
            _print_ui_hint(state)
    raise typer.Exit(0 if state.healthy else 1)


def _print_ui_hint(state: prefect_server.ServerStatus) -> None:
    """How to open the Prefect UI: it asks for the server's credential as its password."""
    if state.authenticated:
        out.print(
            f"Prefect UI: {state.ui_url} (it asks for a password: paste the line of "
            f"{state.credential_file}, e.g. `cat {state.credential_file}`)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"[bold yellow]warning:[/] the server at {state.api_url} answers without a credential "
            "(started by an older flowdeck?): restart it with `flowdeck server stop && flowdeck server start`",
            highlight=False,
            soft_wrap=True,
        )


def services_status() -> None:
    """The local Prefect server and the background worker `flowdeck` starts."""
    from flowdeck.local import services as local_services

    server, worker = local_services.status()
    pid = f" pid {server.pid}" if server.pid else ""
    out.print(f"server: {'up' if server.healthy else 'down'} {server.api_url}{pid}", highlight=False)
    running = f"running pid {worker.pid}" if worker.running else "not running"
    out.print(f"worker: {running} (log {worker.log_file})", highlight=False)


def services_stop(worker_only: bool = typer.Option(False, "--worker-only", help="Leave the server running.")) -> None:
    """Stop the background worker and the local Prefect server."""
    from flowdeck.local import services as local_services

    stopped = local_services.stop(server=not worker_only)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
