"""Entry points: the dashboard in this terminal, or served to browsers with textual-serve.

`run_dashboard()` settles the environment before anything imports prefect, makes sure the
local Prefect server and a worker run when PREFECT_API_URL is unset (reusing them), runs the
App, and on the way out stops what this session started or says what keeps running.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

__all__ = ["run_dashboard", "serve_web"]

STOP_HINT = "stop them with `flowdeck services stop` (or only the server: `flowdeck server stop`)"


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_dashboard(
    definitions: str | Path | None = None,
    *,
    keep_services: bool | None = None,
    sample: bool = False,
    open_execution: str | None = None,
    open_workflow: str | None = None,
) -> int:
    """Run the dashboard; returns the process exit code. `open_execution` / `open_workflow`:
    start on that execution's detail / that workflow's structure (`flowdeck tui --execution`)."""
    from flowdeck.errors import FlowdeckError

    if sample:
        from flowdeck.tui.app import build_app

        build_app(open_execution=open_execution, open_workflow=open_workflow).run()
        return 0

    from flowdeck.local import services as local_services

    if definitions is not None:
        os.environ["FLOWDECK_DEFINITIONS"] = str(Path(definitions).resolve())
    try:
        if not os.environ.get("PREFECT_API_URL"):
            _say("flowdeck: checking the local Prefect server and worker…")
        services = local_services.ensure(definitions)
    except FlowdeckError as error:
        _say(f"error: {error.message}")
        return 3
    from flowdeck.tui.app import FlowdeckApp
    from flowdeck.tui.client import EngineClient

    try:
        client = EngineClient.open(str(definitions) if definitions else None, description=services.describe())
    except FlowdeckError as error:
        _say(f"error: {error.message}")
        return 3
    ask = services.started if keep_services is None else []
    app = FlowdeckApp(client, started_services=ask, open_execution=open_execution, open_workflow=open_workflow)
    choice = app.run()
    if app.return_code not in (0, None):
        return app.return_code or 1
    if keep_services is not None:
        choice = "keep" if keep_services else "stop"
    if choice == "stop" and services.started:
        stopped = []
        if "worker" in services.started and local_services.stop_worker():
            stopped.append("worker")
        if "Prefect server" in services.started:
            from flowdeck.local import prefect_server

            if prefect_server.stop():
                stopped.append("Prefect server")
        _say(f"flowdeck: stopped {', '.join(stopped) or 'nothing'}")
    elif services.managed:
        server, worker = local_services.status()
        running = (
            [f"Prefect server {server.api_url}" + (f" (pid {server.pid})" if server.pid else "")]
            if server.healthy
            else []
        )
        if worker.running:
            running.append(f"worker (pid {worker.pid}, log {worker.log_file})")
        if running:
            how = "started by this session" if services.started else "already running before"
            _say(f"flowdeck: still running in the background ({how}): {'; '.join(running)}")
            _say(f"flowdeck: {STOP_HINT}")
    return 0


def serve_web(host: str = "127.0.0.1", port: int = 8000, definitions: str | Path | None = None) -> None:
    """Serve the dashboard to browsers: each browser session runs `python -m flowdeck.tui`
    (nothing installs a top-level `tui`, so `python -m tui` would fail in every session)."""
    from textual_serve.server import Server

    from flowdeck.local import services as local_services

    local_services.ensure(definitions)
    command = [sys.executable, "-m", "flowdeck.tui", "--keep-services"]
    if definitions is not None:
        command += ["--definitions", str(Path(definitions).resolve())]
    server = Server(shlex.join(command), host=host, port=port, title="flowdeck")
    server.serve()
