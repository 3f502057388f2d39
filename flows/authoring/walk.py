"""The steps of a validated workflow, nested ones included, in the order they are written."""

from __future__ import annotations

from collections.abc import Iterator

from flowdeck.definition.model import ConditionStep, Step, WorkflowCallStep, WorkflowDefinition


def all_steps(steps: tuple[Step, ...]) -> Iterator[Step]:
    """Every step of `steps` and of the branches and defaults inside them, depth first."""
    for step in steps:
        yield step
        if isinstance(step, ConditionStep):
            for branch in step.branches:
                yield from all_steps(branch.steps)
            yield from all_steps(step.default)


def steps_by_id(definition: WorkflowDefinition) -> dict[str, Step]:
    return {step.id: step for step in all_steps(definition.steps)}


def called_workflows(definition: WorkflowDefinition) -> list[WorkflowCallStep]:
    return [step for step in all_steps(definition.steps) if isinstance(step, WorkflowCallStep)]
