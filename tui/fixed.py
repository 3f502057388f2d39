"""A `Client` that answers from fixed data: the seam for deterministic snapshot tests and
for trying the dashboard without Prefect (`FixedClient.sample()`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flowdeck.tui.client import (
    ClientError,
    ExecutionDetail,
    ExecutionRow,
    InputProblem,
    LogLine,
    StepRow,
    WorkflowFile,
    WorkflowVersion,
)

__all__ = ["FixedClient"]

BASE = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)

HELLO = """id: hello
name: Hello
version: 1
status: live
input:
  type: object
  properties:
    name: {type: string, description: Who to greet}
steps:
  - id: choose_greeting
    type: condition
    branches:
      - name: by_name
        when: "$exists(input.name)"
        steps:
          - {id: greet_by_name, type: output, fields: {message: "Hello, {{ input.name }}!"}}
    default:
      - {id: greet_world, type: output, fields: {message: Hello, world!}}
"""

SCORE = """id: score_lead
name: Score lead
version: 2
status: published
input:
  type: object
  required: [company_size, budget]
  properties:
    company_size: {type: integer, minimum: 0, description: Employees}
    budget: {type: number, minimum: 0}
    source: {type: string, enum: [web, referral, event], default: web}
    vip: {type: boolean, default: false}
steps:
  - {id: score, type: code, code: "def run(ctx): return {'points': 1}"}
"""

BROKEN = """id: broken_flow
name: Broken
version: 1
status: published
steps:
  - id: call
    type: htp
    url: "{{ input.url "
"""


def _schema(text: str) -> dict[str, Any]:
    if "score_lead" in text:
        return {
            "type": "object",
            "required": ["company_size", "budget"],
            "properties": {
                "company_size": {"type": "integer", "minimum": 0, "description": "Employees"},
                "budget": {"type": "number", "minimum": 0},
                "source": {"type": "string", "enum": ["web", "referral", "event"], "default": "web"},
                "vip": {"type": "boolean", "default": False},
            },
        }
    return {"type": "object", "properties": {"name": {"type": "string", "description": "Who to greet"}}}


class FixedClient:
    description = "fixed sample data (no Prefect)"

    def __init__(self, executions: int = 12) -> None:
        self._workflows = [
            WorkflowVersion("hello", 1, "live", "Hello", "Greets someone.", _schema(HELLO), "definitions/hello.yaml"),
            WorkflowVersion(
                "score_lead", 1, "published", "Score lead", None, _schema(SCORE), "definitions/score_lead/v1.yaml"
            ),
            WorkflowVersion(
                "score_lead", 2, "published", "Score lead", None, _schema(SCORE), "definitions/score_lead/v2.yaml"
            ),
        ]
        self._files = [
            WorkflowFile(
                "definitions/broken.yaml",
                "broken_flow",
                1,
                "published",
                (
                    "7:11: error: unknown step type 'htp' (did you mean 'http'?)",
                    "8:10: error: unterminated expression '{{ input.url '",
                ),
                (7, 8),
                True,
                BROKEN,
            ),
            WorkflowFile("definitions/hello.yaml", "hello", 1, "live", (), (), False, HELLO),
            WorkflowFile("definitions/score_lead/v1.yaml", "score_lead", 1, "published", (), (), False, SCORE),
            WorkflowFile("definitions/score_lead/v2.yaml", "score_lead", 2, "published", (), (), False, SCORE),
        ]
        statuses = ["running", "waiting", "success", "failed", "cancelled", "pending"]
        self._rows: dict[str, ExecutionRow] = {}
        for n in range(executions):
            status = statuses[n % len(statuses)]
            started = BASE - timedelta(minutes=n)
            workflow, version = ("hello", "1") if n % 2 else ("score_lead", "2")
            execution_id = f"exec_{n:04x}" + "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"[:28]
            self._rows[execution_id] = ExecutionRow(
                execution_id=execution_id,
                workflow_id=workflow,
                version=version,
                mode="async" if n % 3 else "sync",
                status=status,
                current_step="score" if status in ("running", "waiting") else None,
                created_at=started,
                started_at=started if status != "pending" else None,
                ended_at=started + timedelta(seconds=2) if status in ("success", "failed", "cancelled") else None,
                resume_at=started + timedelta(minutes=15) if status == "waiting" else None,
            )

    def workflows(self) -> list[WorkflowVersion]:
        return list(self._workflows)

    def files(self) -> list[WorkflowFile]:
        return list(self._files)

    def reload(self) -> None:
        return None

    def check_input(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> list[InputProblem]:
        schema = next(w.input_schema for w in self._workflows if w.workflow_id == workflow_id)
        return [InputProblem(name, "is required") for name in schema.get("required", []) if name not in input_data]

    async def executions(
        self, known_active: list[str], full: bool, limit: int = 5000
    ) -> tuple[list[ExecutionRow], bool]:
        return [replace(r) for r in self._rows.values()], True

    async def detail(self, execution_id: str) -> ExecutionDetail:
        row = self._rows.get(execution_id)
        if row is None:
            raise ClientError(f"no execution '{execution_id}'")
        steps = [
            StepRow(
                "choose_greeting",
                "choose_greeting",
                "success",
                1,
                row.started_at,
                row.started_at,
                "by_name",
                "by_name",
                True,
            ),
            StepRow(
                "score",
                "score",
                row.status if row.status != "pending" else "pending",
                2,
                row.started_at,
                row.ended_at,
                None,
                {"points": 42} if row.status == "success" else None,
                row.status == "success",
            ),
        ]
        body: dict[str, Any] = {"status": row.status, "execution_id": execution_id}
        if row.status == "success":
            body["output"] = {"points": 42, "tier": "warm"}
        if row.status == "failed":
            body["error"] = {"step_name": "score", "message": "code step raised ValueError: budget missing"}
        return ExecutionDetail(
            row, body, steps, {"company_size": 120, "budget": 5000}, "0000", "http://prefect.invalid/runs/flow-run/0000"
        )

    async def logs(self, execution_id: str, after: datetime | None) -> list[LogLine]:
        if after is not None:
            return []
        return [LogLine(BASE, "INFO", "Started step 'choose_greeting'"), LogLine(BASE, "INFO", "Step 'score' finished")]

    async def run_sync(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        return {"status": "success", "execution_id": "exec_" + "f" * 32, "output": {"message": "Hello"}}

    async def submit(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        return {"status": "pending", "execution_id": "exec_" + "e" * 32}

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        return {"status": "cancelled", "execution_id": execution_id}

    async def changes(self) -> AsyncIterator[None]:
        """Fixed data never changes: the stream ends at once."""
        return
        yield None  # an async generator that yields nothing

    def prefect_url(self, execution_id: str) -> str | None:
        return None

    async def aclose(self) -> None:
        return None
