"""Catalog endpoints: which workflows exist, their versions, and each as an agent tool."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from flowdeck.api.deps import Engine, engine_of
from flowdeck.api.models import Tool, WorkflowList, WorkflowSummary
from flowdeck.definition.catalog import Catalog
from flowdeck.errors import FlowdeckError, UnknownWorkflow

router = APIRouter(prefix="/workflow/workflows", tags=["workflows"])

WorkflowIdPath = Path(max_length=200, description="The workflow's `id`.", examples=["lookup_contact"])


def _latest(catalog: Catalog, workflow_id: str) -> Any:
    try:
        return catalog.resolve(workflow_id, "latest", allow_draft=False)
    except UnknownWorkflow:
        raise
    except FlowdeckError:
        return None


def summary(catalog: Catalog, workflow_id: str) -> dict[str, Any]:
    files = sorted((f for f in catalog.files if f.workflow_id == workflow_id), key=lambda f: (f.version or 0, f.path))
    if not files:
        catalog.resolve(workflow_id, "latest", allow_draft=False)  # raises UnknownWorkflow
    by_path = {d.path: d for d in catalog.definitions}
    latest = _latest(catalog, workflow_id)
    shown = latest or next((by_path[f.path] for f in reversed(files) if f.path in by_path), None)
    versions = []
    for file in files:
        definition = by_path.get(file.path)
        versions.append(
            {
                "version": file.version,
                "status": file.status,
                "name": file.name,
                "description": definition.description if definition else None,
                "valid": definition is not None,
                "input_schema": definition.input_schema if definition else None,
                "sync_timeout_seconds": definition.sync_timeout if definition else None,
                "timeout_seconds": definition.timeout if definition else None,
            }
        )
    return {
        "workflow_id": workflow_id,
        "name": shown.name if shown else files[-1].name,
        "description": shown.description if shown else None,
        "latest_version": latest.version if latest else None,
        "versions": versions,
    }


@router.get("", summary="Every workflow with its versions and statuses", response_model=WorkflowList)
async def list_workflows(engine: Engine = Depends(engine_of)) -> JSONResponse:
    catalog: Catalog = engine.catalog
    ids = sorted({f.workflow_id for f in catalog.files if f.workflow_id})
    return JSONResponse({"workflows": [summary(catalog, workflow_id) for workflow_id in ids]})


@router.get("/{workflow_id}", summary="One workflow: versions, statuses, input schemas", response_model=WorkflowSummary)
async def get_workflow(workflow_id: str = WorkflowIdPath, engine: Engine = Depends(engine_of)) -> JSONResponse:
    return JSONResponse(summary(engine.catalog, workflow_id))


@router.get(
    "/{workflow_id}/tool",
    summary="The workflow as an LLM function-calling tool {name, description, parameters}",
    response_model=Tool,
)
async def get_tool(
    workflow_id: str = WorkflowIdPath,
    version: str = Query("latest", pattern=r"^(latest|[1-9][0-9]{0,8})$", description='"latest" or a version number.'),
    engine: Engine = Depends(engine_of),
) -> JSONResponse:
    definition = engine.resolve(workflow_id, version, allow_draft=False)
    description = (definition.description or definition.name).strip()
    return JSONResponse(
        {
            "name": definition.id,
            "description": description,
            "parameters": tool_parameters(definition.input_schema),
        }
    )


def tool_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema as function calling wants it: always an object with properties."""
    parameters = {key: value for key, value in schema.items() if key not in ("$schema", "$id")}
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return parameters


__all__ = ["router", "summary", "tool_parameters"]
