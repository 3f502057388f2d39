"""One test case, run on the interpreter alone: mocks by step id, canned HTTP, a virtual clock.

Everything real runs for real: templates, conditions, the http step's own code (its client
has an `httpx.MockTransport` that answers from the case's `http` list), code steps in their
sandbox, action steps, called workflows (with the same mocks table). Only three things are
replaced, all through the interpreter's `Hooks`:

- a mocked step's output is "recalled" as if an earlier attempt had finished it (a mocked
  condition then takes the branch its output names);
- a mocked error ends the step before it starts, as the failure of that step;
- a wait ends at once, moving the case's virtual clock (`flowdeck.authoring.clock`).

Retries and the async timeout are not simulated: a failing step fails the execution as
its last attempt would.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from flowdeck.authoring import clock
from flowdeck.authoring.testfile import HttpAnswer, TestCase
from flowdeck.authoring.walk import steps_by_id
from flowdeck.definition.catalog import Catalog
from flowdeck.definition.model import ConditionStep, Step, WaitStep, WorkflowDefinition
from flowdeck.errors import FlowdeckError
from flowdeck.runtime.inputs import validate_input
from flowdeck.runtime.interpreter import EndExecution, Hooks, JournalEntry, Outcome, Run

EXECUTION_ID = "exec_" + "0" * 32  # what `execution.id` reads in a test


@dataclass
class CaseResult:
    """What happened in one case's execution."""

    outcome: Outcome | None  # None: nothing ran (`problem` says why)
    steps: list[str] = field(default_factory=list)
    branches: dict[str, str | None] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    unmocked: list[str] = field(default_factory=list)
    ctx: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        record = self.outcome.record() if self.outcome else {"status": "not_run", "error": {"message": self.problem}}
        return {**record, "steps": self.steps, "branches": self.branches, "requests": self.requests}


class UnmockedRequest(httpx.TransportError):
    """A request no `http` answer matches, in a run without --allow-network."""


class _Answers:
    """The transport's handler: answers from the case, else the network or an error."""

    def __init__(self, case: TestCase, result: CaseResult, network: httpx.AsyncBaseTransport | None) -> None:
        self.case = case
        self.result = result
        self.network = network

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.result.requests.append({"method": request.method, "url": url})
        for answer in self.case.http:
            if (answer.method is None or answer.method == request.method) and fnmatch.fnmatchcase(url, answer.url):
                return _response(answer)
        if self.network is not None:
            return await self.network.handle_async_request(request)
        message = f"unmocked request: {request.method} {url}"
        self.result.unmocked.append(message)
        raise UnmockedRequest(message, request=request)


def _response(answer: HttpAnswer) -> httpx.Response:
    if answer.has_json:
        return httpx.Response(answer.status, headers=answer.headers, json=answer.json)
    return httpx.Response(answer.status, headers=answer.headers, text=answer.text or "")


class CaseHooks(Hooks):
    """Mocks, the steps that ran, and waits on the virtual clock; keys of called workflows'
    steps carry the calling step's key (`call.search`): mocks apply by the last part."""

    def __init__(self, case: TestCase, definition: WorkflowDefinition, result: CaseResult) -> None:
        self.case = case
        self.definition = definition
        self.result = result
        self.by_id = steps_by_id(definition)
        self.logs: list[str] = []

    def _ran(self, key: str, step: Step | None = None, output: Any = None) -> None:
        if "." in key:  # a called workflow's step: it ran inside the workflow step
            return
        self.result.steps.append(key)
        if isinstance(step, ConditionStep):
            self.result.branches[key] = output

    async def recall(self, key: str) -> JournalEntry | None:
        mock = self.case.mocks.get(key.rsplit(".", 1)[-1])
        if mock is None or mock.error is not None:
            return None
        self._ran(key, self.by_id.get(key), mock.output)
        return JournalEntry(status="done", output=mock.output)

    async def checkpoint(self, key: str, step: Step) -> None:
        mock = self.case.mocks.get(step.id)
        if mock is not None and mock.error is not None:
            self._ran(key)
            raise EndExecution(
                Outcome(status="failed", error={"step_name": step.name, "message": mock.error}, retryable=True)
            )

    async def step_started(self, key: str, step: Step) -> None:
        self._ran(key)

    async def step_finished(self, key: str, step: Step, output: Any) -> None:
        if isinstance(step, ConditionStep) and "." not in key:
            self.result.branches[key] = output

    def log(self, key: str | None, level: int, message: str) -> None:
        self.logs.append(message)

    def now(self) -> datetime:
        virtual = clock.current.get()
        return virtual.now if virtual is not None else super().now()

    async def wait(self, key: str, step: WaitStep, started_at: datetime, due_at: datetime) -> None:
        virtual = clock.current.get()
        if virtual is not None:
            virtual.advance_to(due_at)


class Runner:
    """Runs cases against one catalog; holds the real transport of --allow-network."""

    def __init__(self, catalog: Catalog, *, allow_network: bool = False) -> None:
        self.catalog = catalog
        self.network: httpx.AsyncBaseTransport | None = httpx.AsyncHTTPTransport() if allow_network else None

    def resolve_for_step(self, workflow_id: str, version: str | int) -> WorkflowDefinition:
        """As the engine does: a workflow step runs published or live versions only."""
        return self.catalog.resolve(workflow_id, version, allow_draft=False)

    async def run(self, definition: WorkflowDefinition, case: TestCase) -> CaseResult:
        started = time.perf_counter()
        result = CaseResult(outcome=None)
        try:
            validate_input(definition, case.input)
        except FlowdeckError as error:
            result.problem = error.message
            return result
        hooks = CaseHooks(case, definition, result)
        transport = httpx.MockTransport(_Answers(case, result, self.network))
        token = clock.current.set(clock.VirtualClock())
        try:
            with clock.installed():
                async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
                    run = Run(
                        definition=definition,
                        execution_id=EXECUTION_ID,
                        mode="sync",
                        input=case.input,
                        hooks=hooks,
                        trigger=case.trigger,
                        resolve_workflow=self.resolve_for_step,
                        http=client,
                    )
                    result.outcome = await run.execute()
                    result.ctx = run.ctx
        except FlowdeckError as error:  # raised outside a step, e.g. an `until` that is not a time
            result.problem = error.message
        except Exception as error:  # a flowdeck bug: this case fails with it, the others still run
            result.outcome = None
            result.problem = f"internal error {type(error).__name__}: {error} (a flowdeck bug: please report it)"
        finally:
            clock.current.reset(token)
            result.seconds = time.perf_counter() - started
        return result

    async def aclose(self) -> None:
        if self.network is not None:
            await self.network.aclose()
