"""The `flowdeck` command: its commands, in the order `flowdeck --help` lists them.

Prefect reads its settings when it is imported, so every command that talks to Prefect
first settles the environment (`prefect_server.configure_environment`, cli/common.py) and
only then imports the engine. Errors a user can cause print one clear line and exit with the
error class's `exit_code` (flowdeck.errors); a traceback is always a flowdeck bug.

    cli/dashboard.py    tui (and `flowdeck` alone), web
    cli/definitions.py  validate, list, deploy, prefect-yaml
    cli/executions.py   run, status, executions, cancel
    cli/services.py     worker, api, server start|stop|status, services status|stop
    cli/storage.py      storage show|set
"""

from __future__ import annotations

import sys

import typer

from flowdeck import settings
from flowdeck.cli import authoring, dashboard, definitions, executions, services, storage
from flowdeck.cli.common import err
from flowdeck.errors import FlowdeckError

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

app.callback(invoke_without_command=True)(dashboard.open_by_default)
app.command()(dashboard.tui)
app.command()(dashboard.web)
services_app.command("status")(services.services_status)
services_app.command("stop")(services.services_stop)
app.command()(definitions.validate)
app.command("list")(definitions.list_workflows)
authoring.register(app)  # test, graph, eval, new, version new, promote (cli/authoring.py)
app.command()(executions.run)
app.command()(executions.status)
app.command()(executions.executions)
app.command()(executions.cancel)
app.command()(services.worker)
app.command()(definitions.deploy)
app.command("prefect-yaml")(definitions.prefect_yaml_command)
app.command()(services.api)
server_app.command("start")(services.server_start)
server_app.command("stop")(services.server_stop)
server_app.command("status")(services.server_status)
storage_app.command("show")(storage.storage_show)
storage_app.command("set")(storage.storage_set)


def main() -> None:
    try:
        settings.check()
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except FlowdeckError as error:  # one a command did not turn into its own message
        err.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
