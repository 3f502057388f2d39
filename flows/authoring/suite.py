"""`flowdeck test`: load the test files, tie each to its workflow version, run the cases.

A test file that does not load (its YAML, its schema, a workflow or version that does not
exist, a mock naming a step the workflow does not have) is a load problem with its
`PATH:LINE:COL`; its cases do not run. Cases of the files that load run concurrently (a
few at a time: code steps wait on their sandbox processes), each in a fresh execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flowdeck.authoring.expect import failures
from flowdeck.authoring.runner import CaseResult, Runner
from flowdeck.authoring.testfile import (
    TestCase,
    TestFile,
    TestFileInvalid,
    did_you_mean,
    find_test_files,
    load_test_file,
)
from flowdeck.authoring.walk import called_workflows, steps_by_id
from flowdeck.definition.catalog import Catalog
from flowdeck.definition.model import ConditionStep, FailStep, OutputStep, Step, WorkflowDefinition
from flowdeck.definition.validation.report import Problem
from flowdeck.errors import FlowdeckError

CONCURRENCY = 8  # cases in flight at once


@dataclass
class CaseReport:
    file: TestFile
    definition: WorkflowDefinition
    case: TestCase
    result: CaseResult
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def where(self) -> str:
        return f"{self.file.path}:{self.case.line}"


@dataclass
class SuiteReport:
    cases: list[CaseReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # test files that do not load
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(1 for case in self.cases if case.passed)

    @property
    def failed(self) -> int:
        return len(self.cases) - self.passed

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 2
        return 1 if self.failed else 0


@dataclass(frozen=True)
class Loaded:
    file: TestFile
    definition: WorkflowDefinition


def load_files(paths: Iterable[str | Path], catalog: Catalog) -> tuple[list[Loaded], list[Problem]]:
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    for path in find_test_files(paths):
        try:
            test_file = load_test_file(path)
            loaded.append(Loaded(test_file, tie_to_workflow(test_file, catalog)))
        except TestFileInvalid as invalid:
            problems.extend(invalid.problems)
    return loaded, problems


def tie_to_workflow(test_file: TestFile, catalog: Catalog) -> WorkflowDefinition:
    """The version under test (drafts included when pinned); every mock must name a step."""

    def problem(path: tuple[str | int, ...], message: str) -> TestFileInvalid:
        position = test_file.position_of(path)
        return TestFileInvalid([Problem(test_file.path, position.line, position.col, "error", message)])

    try:
        definition = catalog.resolve(test_file.workflow, test_file.version, allow_draft=True)
    except FlowdeckError as error:
        key = "version" if "version" in test_file.document.data and "version" in error.message else "workflow"
        raise problem((key,), error.message) from None
    known = _reachable_steps(definition, catalog)
    found = _expected_steps_problems(test_file, definition)
    for index, case in enumerate(test_file.cases):
        for step_id in case.mocks:
            where = f"mock for step '{step_id}' in case '{case.name}'"
            if step_id not in known:
                message = (
                    f"{where}: workflow '{definition.key}' (and the workflows it calls) has no such step"
                    f"{did_you_mean(step_id, sorted(known))}"
                )
            elif isinstance(known[step_id], (OutputStep, FailStep)):
                message = (
                    f"{where}: {known[step_id].type} steps end the execution and cannot be mocked; "
                    "mock the steps they read instead"
                )
            else:
                continue
            found.append(problem(("cases", index, "mocks", step_id), message).problems[0])
    if found:
        raise TestFileInvalid(found)
    return definition


def _expected_steps_problems(test_file: TestFile, definition: WorkflowDefinition) -> list[Problem]:
    """`expect.steps` and `expect.branches` name steps of the workflow under test."""
    own = steps_by_id(definition)
    found = []
    for index, case in enumerate(test_file.cases):
        named = [(("steps", n), step_id, False) for n, step_id in enumerate(case.expect.get("steps") or [])]
        named += [(("branches", step_id), step_id, True) for step_id in case.expect.get("branches") or {}]
        for path, step_id, condition in named:
            step = own.get(step_id)
            if step is not None and (not condition or isinstance(step, ConditionStep)):
                continue
            what = "condition step" if condition else "step"
            position = test_file.position_of(("cases", index, "expect") + path)
            found.append(
                Problem(
                    test_file.path,
                    position.line,
                    position.col,
                    "error",
                    f"expect of case '{case.name}' names {what} '{step_id}', which workflow "
                    f"'{definition.key}' does not have{did_you_mean(step_id, sorted(own))}",
                )
            )
    return found


def _reachable_steps(definition: WorkflowDefinition, catalog: Catalog, depth: int = 0) -> dict[str, Step]:
    """The steps a mock may name: the workflow's and those of the workflows it calls."""
    steps: dict[str, Step] = {}
    if depth < 16:  # calls nest: stop long before a cycle could matter
        for call in called_workflows(definition):
            try:
                called = catalog.resolve(call.workflow_id, call.version, allow_draft=False)
            except FlowdeckError:
                continue  # validation reports the call; the case will fail on it
            steps.update(_reachable_steps(called, catalog, depth + 1))
    steps.update(steps_by_id(definition))
    return steps


def select(loaded: list[Loaded], keyword: str | None) -> list[tuple[Loaded, TestCase]]:
    chosen = []
    for item in loaded:
        for case in item.file.cases:
            if keyword is None or keyword.lower() in case.name.lower():
                chosen.append((item, case))
    return chosen


async def run_suite(
    selected: list[tuple[Loaded, TestCase]],
    catalog: Catalog,
    *,
    allow_network: bool = False,
    on_case: Callable[[CaseReport], None] | None = None,
) -> list[CaseReport]:
    """Run the cases; `on_case` sees each report as its case ends, the list keeps file order."""
    runner = Runner(catalog, allow_network=allow_network)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Loaded, case: TestCase) -> CaseReport:
        async with gate:
            result = await runner.run(item.definition, case)
        report = CaseReport(item.file, item.definition, case, result, failures(case.expect, result))
        if on_case is not None:
            on_case(report)
        return report

    try:
        return list(await asyncio.gather(*(one(item, case) for item, case in selected)))
    finally:
        await runner.aclose()
