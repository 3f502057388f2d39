"""`flowdeck storage`: where outputs and step journals live (Prefect's default result storage)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import typer

from flowdeck.cli.common import fail, failed, out, print_json
from flowdeck.errors import FlowdeckError
from flowdeck.local import prefect_server


def _storage_call(call: Any, verb: str) -> Any:
    """Run a result-storage coroutine against Prefect; every failure is a message, exit 2
    for what the user gave, 3 for Prefect."""
    try:
        prefect_server.configure_environment()
        return asyncio.run(call())
    except FlowdeckError as error:  # what the user gave (ConfigurationError, NotFound) or Prefect
        raise failed(error) from None
    except Exception as error:  # Prefect's client: connection refused, HTTP errors
        where = os.environ.get("PREFECT_API_URL")
        raise fail(f"could not {verb} the result storage in Prefect ({where}): {error}", 3) from None


def storage_show(as_json: bool = typer.Option(False, "--json")) -> None:
    """The result storage every flowdeck process of this Prefect server uses."""
    from flowdeck.store import result_storage

    setting = _storage_call(result_storage.show, "read")
    if as_json:
        print_json({"block": setting.block, "block_id": setting.block_id})
    else:
        out.print(setting.describe(), highlight=False)


def storage_set(
    target: str = typer.Argument(..., help="redis://HOST:PORT/DB, or BLOCK-TYPE/NAME of a saved storage block"),
) -> None:
    """Share outputs between machines: make a storage block the server's default result storage.

    Run it once, before starting workers and API processes (each reads it at start)."""
    from flowdeck.store import result_storage

    setting = _storage_call(lambda: result_storage.set_default(target), "set")
    out.print(f"result storage: {setting.describe()}", highlight=False)
