"""Prefect entrypoint: `flowdeck.execution.entrypoint:<workflow_id>` is that workflow's flow.

Prefect's process workers load a deployment's flow by getattr on this module; the version
comes from the deployment (`v<n>`), read from the flow run's tags at execution time, so one
attribute per workflow id serves all its versions.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from flowdeck.local import prefect_server

    prefect_server.base_environment()
    from flowdeck.definition.catalog import load_catalog
    from flowdeck.execution.compiler import compile_flow

    catalog = load_catalog()
    version = _version_from_context()
    try:
        definition = catalog.resolve(name, version, allow_draft=version != "latest")
    except Exception as error:
        raise AttributeError(f"no flowdeck workflow {name!r}: {error}") from None
    return compile_flow(definition)


def _version_from_context() -> int | str:
    """The version the running deployment stands for (PREFECT__FLOW_RUN_ID is set by the worker)."""
    import os

    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not flow_run_id:
        return "latest"
    from flowdeck.store import encoding
    from flowdeck.store.prefect_api import read_flow_run_blocking

    flow_run = read_flow_run_blocking(flow_run_id)
    version = encoding.version_of_tags((flow_run or {}).get("tags", []))
    return "latest" if version is None else version
