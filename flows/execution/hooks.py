"""What the sync and the durable hooks share: steps' failures and log lines go to Prefect
through the execution's `TaskRunEvents`."""

from __future__ import annotations

from flowdeck.definition.model import Step
from flowdeck.runtime.interpreter import Hooks
from flowdeck.store.events import TaskRunEvents


class RecordedHooks(Hooks):
    """The subclass provides `events`, the execution's `TaskRunEvents`."""

    events: TaskRunEvents

    def log(self, key: str | None, level: int, message: str) -> None:
        self.events.log(key, level, message)

    async def step_failed(self, key: str, step: Step, message: str) -> None:
        self.events.log(key, 40, f"step '{step.name}' failed: {message}")
        self.events.finished(key, None, failed_message=message)
