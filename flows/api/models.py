"""Request and response bodies of the HTTP API, as pydantic models.

They exist so that `/openapi.json` and `/docs` describe every endpoint exactly; the
schemathesis test in tests/test_api_fuzz.py holds the answers to them. Handlers validate
requests with these models but build answers as plain dicts (the engine's bodies), so a
response model must describe what the engine really answers (see flows/sync.py and
flows/executions.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

MAX_BATCH = 1000

ExecutionStatusName = Literal["pending", "waiting", "running", "success", "failed", "cancelled"]

WorkflowVersion = Annotated[
    Annotated[StrictInt, Field(ge=1, le=1_000_000_000)]
    | Annotated[StrictStr, Field(pattern=r"^(latest|[1-9][0-9]{0,8})$")],
    Field(
        description='"latest" (the live version, else the highest published one), or a version '
        'number as a number or a string ("3" or 3). Drafts never run through the API.',
        examples=["latest", 2, "2"],
    ),
]

WorkflowId = Annotated[
    str,
    Field(min_length=1, max_length=200, description="The workflow's `id`.", examples=["lookup_contact"]),
]


class _Request(BaseModel):
    # A misspelt field ("input" for "input_data") must not run the workflow with no input.
    model_config = ConfigDict(extra="forbid")


class ExecutionRequest(_Request):
    """Body of the sync and async start endpoints."""

    workflow_id: WorkflowId
    workflow_version: WorkflowVersion = "latest"
    input_data: dict[str, Any] = Field(
        default_factory=dict,
        description="The workflow's input; checked against its input schema before anything starts.",
        examples=[{"customer_email": "alice@example.com"}],
    )


class BatchRequest(_Request):
    """One async execution per item of `inputs`, all of one workflow version."""

    workflow_id: WorkflowId
    workflow_version: WorkflowVersion = "latest"
    inputs: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"input_data of each execution (1 to {MAX_BATCH}); every one is checked "
        "before any execution starts.",
    )


# ----------------------------------------------------------------------------- answers


class StepFailure(BaseModel):
    step_name: str | None = Field(description="The name of the step that failed.")
    message: str


class SyncSuccess(BaseModel):
    status: Literal["success"]
    execution_id: str = Field(examples=["exec_0f3c2e5a9b7d4c1e8f6a2b3c4d5e6f70"])
    output: dict[str, Any] = Field(description="What the workflow's output step returned.")


class SyncFailure(BaseModel):
    status: Literal["failed"]
    execution_id: str
    error: StepFailure


class Handoff(BaseModel):
    """A sync call that reached its limit: the execution continues in async mode; poll it."""

    status: Literal["running", "waiting"]
    execution_id: str
    resume_at: str | None = Field(default=None, description="When a waiting execution resumes (ISO 8601).")


class Started(BaseModel):
    """An async execution was accepted (an `Idempotency-Key` seen before answers the
    existing execution with its current status)."""

    status: ExecutionStatusName
    execution_id: str


class ExecutionStatus(BaseModel):
    status: ExecutionStatusName
    execution_id: str
    workflow_id: str | None
    workflow_version: int | str | None
    mode: str | None = Field(description="sync or async (a sync call handed off stays sync).")
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    current_step: str | None = Field(description="The step running or waiting now, else the last that ran.")
    resume_at: str | None
    attempt: int
    output: dict[str, Any] | None = Field(default=None, description="Present when status is success.")
    error: StepFailure | None = Field(default=None, description="Present when status is failed.")


class Cancelled(BaseModel):
    status: Literal["cancelled", "cancelling"] = Field(
        description="cancelling: a worker is running it and stops it within moments."
    )
    execution_id: str


class BatchStarted(BaseModel):
    workflow_id: str
    workflow_version: int = Field(description="The version every execution of the batch runs.")
    executions: list[Started] = Field(description="In the order of `inputs`.")


class VersionInfo(BaseModel):
    version: int | None
    status: Literal["draft", "published", "live"] | None
    name: str | None
    description: str | None = None
    valid: bool = Field(description="False when the file has validation errors (run `flowdeck validate`).")
    input_schema: dict[str, Any] | None = Field(default=None, description="JSON Schema of input_data.")
    sync_timeout_seconds: float | None = None
    timeout_seconds: float | None = None


class WorkflowSummary(BaseModel):
    workflow_id: str
    name: str | None
    description: str | None
    latest_version: int | None = Field(description='What "latest" runs; null when only drafts exist.')
    versions: list[VersionInfo]


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]


class Tool(BaseModel):
    """The workflow as an LLM function-calling tool; call the sync endpoint with the
    arguments the model produces as `input_data`."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(description="The input schema of the version that runs.")


class Health(BaseModel):
    status: Literal["ok"]
    prefect: Literal["ok"]
    prefect_answered_s_ago: float = Field(
        default=0.0,
        description="How long ago Prefect's own /health last answered: it is asked at most twice a second, "
        "and a slow answer is not waited for while one younger than 5 s is on hand.",
    )
    outbox: dict[str, Any] | None = Field(
        default=None,
        description="Executions committed here and not yet in Prefect: `executions`, `oldest_age_s`, `limit` "
        "(beyond it new executions get 503), `drain_failures`, `drain_last_error`.",
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable, e.g. invalid_input, unknown_workflow.")
    message: str = Field(description="What went wrong and what to do, for a person.")
    details: Any = Field(
        default=None,
        description="For invalid_input and invalid_request: a list of {field, message}, one per problem.",
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


__all__ = [
    "MAX_BATCH",
    "BatchRequest",
    "BatchStarted",
    "Cancelled",
    "ErrorBody",
    "ExecutionRequest",
    "ExecutionStatus",
    "Handoff",
    "Health",
    "Started",
    "SyncFailure",
    "SyncSuccess",
    "Tool",
    "WorkflowList",
    "WorkflowSummary",
]
