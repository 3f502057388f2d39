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

SCORE_V1 = """id: score_lead
name: Score lead
version: 1
status: published
input:
  type: object
  required: [company_size]
  properties:
    company_size: {type: integer, minimum: 0, description: Employees}
steps:
  - {id: score, type: code, code: "def run(ctx): return {'points': 1}"}
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
  - {id: fetch_company, type: http, url: "https://crm.example/companies", retry: {max_attempts: 3}}
  - {id: score, type: code, code: "def run(ctx): return {'points': 1}"}
  - {id: cool_off, type: wait, duration: 15m}
  - {id: result, type: output, fields: {tier: warm}}
"""

# What `flowdeck graph` draws for each fixed version (the real client renders the definition).
STRUCTURES = {
    ("hello", 1): """hello@1 (live) Hello: definitions/hello.yaml
└─ choose_greeting [condition]
   ├─ ◇ by_name when $exists(input.name)
   │  └─ greet_by_name [output]  ends: success (message)
   └─ ◇ default
      └─ greet_world [output]  ends: success (message)""",
    ("score_lead", 1): """score_lead@1 (published) Score lead: definitions/score_lead/v1.yaml
└─ score [code]  run(ctx), 10s limit""",
    ("score_lead", 2): """score_lead@2 (published) Score lead: definitions/score_lead/v2.yaml
├─ fetch_company [http]  GET https://crm.example/companies
├─ score [code]  run(ctx), 10s limit
├─ cool_off [wait]  15m
└─ result [output]  ends: success (tier)""",
}

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
                "company_size": {"type": "integer", "minimum": 0, "maximum": 100000, "description": "Employees"},
                "budget": {"type": "number", "minimum": 0},
                "email": {"type": "string", "format": "email"},
                "source": {"type": "string", "enum": ["web", "referral", "event"], "default": "web"},
                "vip": {"type": "boolean", "default": False},
            },
        }
    return {"type": "object", "properties": {"name": {"type": "string", "description": "Who to greet"}}}


class FixedClient:
    description = "fixed sample data (no Prefect)"

    def __init__(self, executions: int = 12) -> None:
        # the outbox's backlog as the header shows it (a test sets what it needs)
        self.backlog_state: dict[str, Any] = {"executions": 0, "oldest_age_s": 0.0, "limit": 10000}
        self._workflows = [
            WorkflowVersion("hello", 1, "live", "Hello", "Greets someone.", _schema(HELLO), "definitions/hello.yaml"),
            WorkflowVersion(
                "score_lead", 1, "published", "Score lead", None, _schema(SCORE), "definitions/score_lead/v1.yaml"
            ),
            WorkflowVersion(
                "score_lead",
                2,
                "published",
                "Score lead",
                None,
                _schema(SCORE),
                "definitions/score_lead/v2.yaml",
                has_wait=True,
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
            WorkflowFile("definitions/score_lead/v1.yaml", "score_lead", 1, "published", (), (), False, SCORE_V1),
            WorkflowFile("definitions/score_lead/v2.yaml", "score_lead", 2, "published", (), (), False, SCORE),
        ]
        self.launched: list[tuple[str, int, str, dict[str, Any]]] = []  # (workflow, version, mode, input)
        self.cancelled: list[str] = []
        self.down = False  # True: every read fails as with Prefect stopped
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
                ended_at=started + timedelta(seconds=9) if status in ("success", "failed", "cancelled") else None,
                resume_at=started + timedelta(minutes=15) if status == "waiting" else None,
            )

    def workflows(self) -> list[WorkflowVersion]:
        return list(self._workflows)

    def files(self) -> list[WorkflowFile]:
        return list(self._files)

    def reload(self) -> None:
        return None

    def check_input(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> list[InputProblem]:
        """The checks the real schema makes that the fixed workflows need: required, email, minimum."""
        schema = next(w.input_schema for w in self._workflows if w.workflow_id == workflow_id)
        problems = [InputProblem(name, "is required") for name in schema.get("required", []) if name not in input_data]
        email = input_data.get("email")
        if isinstance(email, str) and "@" not in email:
            problems.append(InputProblem("email", f"{email!r} is not a 'email'"))
        for name, field in schema.get("properties", {}).items():
            value = input_data.get(name)
            if isinstance(value, (int, float)) and "minimum" in field and value < field["minimum"]:
                problems.append(InputProblem(name, f"{value} is less than the minimum of {field['minimum']}"))
        return problems

    async def executions(
        self, known_active: list[str], full: bool, limit: int = 5000
    ) -> tuple[list[ExecutionRow], bool]:
        if self.down:
            raise ClientError("cannot reach Prefect at http://127.0.0.1:1/api: connection refused")
        return [replace(r) for r in self._rows.values()], True

    async def detail(self, execution_id: str) -> ExecutionDetail:
        row = self._rows.get(execution_id)
        if row is None:
            raise ClientError(f"no execution '{execution_id}'")
        steps = _async_steps(row) if row.mode == "async" else _sync_steps(row)
        body: dict[str, Any] = {
            "status": row.status,
            "execution_id": execution_id,
            "attempt": 2 if row.mode == "async" and row.status != "pending" else 1,
        }
        if row.status == "success":
            body["output"] = {"points": 42, "tier": "warm"}
        if row.status == "failed":
            body["error"] = {"step_name": steps[-1].name, "message": "code step raised ValueError: budget missing"}
            steps[-1].error = body["error"]["message"]
        trigger = {"type": "api", "request_id": "req-7f3a"} if row.mode == "async" else {"type": "manual"}
        return ExecutionDetail(
            row,
            body,
            steps,
            {"company_size": 120, "budget": 5000, "contact": {"email": "ada@example.com"}},
            "0000",
            "http://prefect.invalid/runs/flow-run/0000",
            trigger,
        )

    async def logs(self, execution_id: str, after: datetime | None) -> list[LogLine]:
        if after is not None:
            return []
        at = BASE - timedelta(minutes=1)
        return [
            LogLine(at, "INFO", "Started step 'fetch_company'"),
            LogLine(at + timedelta(seconds=1), "WARNING", "fetch_company: HTTP 503 from crm.example, retrying in 2s"),
            LogLine(at + timedelta(seconds=4), "INFO", "fetch_company: HTTP 200"),
            LogLine(at + timedelta(seconds=5), "INFO", "Step 'score' finished"),
            LogLine(at + timedelta(seconds=6), "ERROR", "score: budget missing"),
        ]

    def _new(self, workflow_id: str, version: int, mode: str, status: str, input_data: dict[str, Any]) -> str:
        """A launched execution joins the fixed ones (ids in order: deterministic)."""
        self.launched.append((workflow_id, version, mode, dict(input_data)))
        execution_id = f"exec_{len(self.launched):04x}" + "f" * 28
        ended = BASE if status != "pending" else None
        self._rows[execution_id] = ExecutionRow(
            execution_id, workflow_id, str(version), mode, status, None, BASE, BASE, ended
        )
        return execution_id

    async def run_sync(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        execution_id = self._new(workflow_id, version, "sync", "success", input_data)
        return {"status": "success", "execution_id": execution_id, "output": {"message": "Hello"}}

    async def submit(self, workflow_id: str, version: int, input_data: dict[str, Any]) -> dict[str, Any]:
        return {"status": "pending", "execution_id": self._new(workflow_id, version, "async", "pending", input_data)}

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        self.cancelled.append(execution_id)
        return {"status": "cancelled", "execution_id": execution_id}

    async def changes(self) -> AsyncIterator[None]:
        """Fixed data never changes: the stream ends at once."""
        return
        yield None  # an async generator that yields nothing

    def prefect_url(self, execution_id: str) -> str | None:
        return None

    def backlog(self) -> dict[str, Any]:
        return dict(self.backlog_state)

    def structure(self, workflow_id: str, version: int) -> str:
        return STRUCTURES.get((workflow_id, version), f"{workflow_id}@{version}")

    async def aclose(self) -> None:
        return None


def _at(row: ExecutionRow, seconds: float) -> datetime | None:
    return None if row.started_at is None else row.started_at + timedelta(seconds=seconds)


def _sync_steps(row: ExecutionRow) -> list[StepRow]:
    """A sync run: a condition (its output: the branch taken) and the branch's step."""
    last = "pending" if row.status == "pending" else row.status
    return [
        StepRow(
            "choose_greeting", "choose_greeting", "success", 1, _at(row, 0), _at(row, 0.2), "by_name", "by_name", True
        ),
        StepRow("score", "score", last, 1, _at(row, 0.2), _at(row, 1.5) if row.ended_at else None),
    ]


def _async_steps(row: ExecutionRow) -> list[StepRow]:
    """An async run after a worker crash: fetch_company retried, then a wait (waiting or done)."""
    if row.status == "pending":
        return []
    ended = row.status in ("success", "failed", "cancelled")
    wait_status = "waiting" if row.status == "waiting" else ("success" if ended else "running")
    return [
        StepRow("fetch_company", "fetch_company", "failed", 1, _at(row, 0), _at(row, 1.0), None, None, False, 1),
        StepRow(
            "fetch_company", "fetch_company", "success", 2, _at(row, 3.0), _at(row, 4.0), None, {"size": 120}, True, 2
        ),
        StepRow("score", "score", "success", 1, _at(row, 4.0), _at(row, 5.0), None, {"points": 42}, True),
        StepRow(
            "cool_off",
            "cool_off",
            wait_status,
            1,
            _at(row, 5.0),
            _at(row, 8.0) if ended else None,
            kind="wait",
        ),
    ]
