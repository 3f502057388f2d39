"""The validated workflow definition: what a YAML file means once it has passed validation.

The loader (`flows.definitions`) turns YAML into these objects only after every check in
`flows.validation` passed, so the engine can trust them: ids are unique, durations are
seconds, expressions parse, referenced steps exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from flowdeck.definition.durations import MAX_DURATION_SECONDS

Status = Literal["draft", "published", "live"]

DEFAULT_SYNC_TIMEOUT = 60.0
# A sync caller holds a connection open for the whole limit: a workflow may raise it, but not
# past 15 minutes (longer work belongs in async mode).
MAX_SYNC_TIMEOUT = 900.0
DEFAULT_TIMEOUT = 3600.0
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_CODE_TIMEOUT = 10.0
# A code step holds a sandbox (a cgroup, a share of 2 cores) while it runs: bounded, and
# the bounds are the schema's maxima (docs/security.md). Longer or bigger work is a service
# called with an http step.
MAX_CODE_TIMEOUT = 300.0
MAX_CODE_MEMORY_MB = 2048


@dataclass(frozen=True)
class SourceRef:
    """Where a value came from, for error messages (1-based line and column)."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class StepBase:
    id: str
    name: str
    description: str | None
    source: SourceRef


@dataclass(frozen=True)
class HttpStep(StepBase):
    url: Any
    method: str = "GET"
    headers: Any = None
    query: Any = None
    body: Any = None
    timeout: float = DEFAULT_HTTP_TIMEOUT
    fail_on_status: bool = True
    type: Literal["http"] = "http"


@dataclass(frozen=True)
class CodeStep(StepBase):
    code: str
    timeout: float = DEFAULT_CODE_TIMEOUT
    memory_mb: int = 256
    type: Literal["code"] = "code"


@dataclass(frozen=True)
class Branch:
    name: str
    when: str
    steps: tuple[Step, ...]
    source: SourceRef


@dataclass(frozen=True)
class ConditionStep(StepBase):
    branches: tuple[Branch, ...]
    default: tuple[Step, ...] = ()
    type: Literal["condition"] = "condition"


@dataclass(frozen=True)
class WaitStep(StepBase):
    duration: float | None = None  # seconds
    until: str | None = None  # expression giving an ISO-8601 time
    type: Literal["wait"] = "wait"


@dataclass(frozen=True)
class OutputStep(StepBase):
    fields: dict[str, Any] = field(default_factory=dict)
    type: Literal["output"] = "output"


@dataclass(frozen=True)
class FailStep(StepBase):
    message: Any = "failed"
    type: Literal["fail"] = "fail"


@dataclass(frozen=True)
class NoteStep(StepBase):
    text: str = ""
    type: Literal["note"] = "note"


@dataclass(frozen=True)
class ActionStep(StepBase):
    uses: str = ""  # "package.module:function"
    with_: dict[str, Any] = field(default_factory=dict)
    type: Literal["action"] = "action"


@dataclass(frozen=True)
class WorkflowCallStep(StepBase):
    workflow_id: str = ""
    version: str | int = "latest"
    input: Any = None
    type: Literal["workflow"] = "workflow"


Step: TypeAlias = (
    HttpStep | CodeStep | ConditionStep | WaitStep | OutputStep | FailStep | NoteStep | ActionStep | WorkflowCallStep
)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 0
    delay: float = 0.0  # seconds before the first retry
    backoff: float = 1.0  # multiplier applied to the delay for each further retry

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 = first retry), at most MAX_DURATION_SECONDS:
        a backoff raised to many retries overflows a float (then a datetime)."""
        try:
            seconds = self.delay * (self.backoff ** max(0, attempt - 2))
        except OverflowError:
            return float(MAX_DURATION_SECONDS)
        return min(seconds, float(MAX_DURATION_SECONDS))


@dataclass(frozen=True)
class ScheduleTrigger:
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict)
    type: Literal["schedule"] = "schedule"


@dataclass(frozen=True)
class WorkflowDefinition:
    id: str
    version: int
    name: str
    status: Status
    steps: tuple[Step, ...]
    path: str
    description: str | None = None
    sync_timeout: float | None = None  # None: the server default
    timeout: float = DEFAULT_TIMEOUT
    retries: RetryPolicy = RetryPolicy()
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    triggers: tuple[ScheduleTrigger, ...] = ()

    @property
    def key(self) -> str:
        """`id@version`, the name used in messages and Prefect deployment names."""
        return f"{self.id}@{self.version}"

    def all_steps(self) -> list[Step]:
        """Every step, nested ones included, in document order."""
        found: list[Step] = []

        def visit(steps: tuple[Step, ...]) -> None:
            for step in steps:
                found.append(step)
                if isinstance(step, ConditionStep):
                    for branch in step.branches:
                        visit(branch.steps)
                    visit(step.default)

        visit(self.steps)
        return found
