"""All checks of one file that the schema cannot express, run in one pass."""

from __future__ import annotations

from flowdeck.definition.validation.code_checks import _CodeChecks
from flowdeck.definition.validation.references import _ReferenceChecks
from flowdeck.definition.validation.timing import _TimingChecks
from flowdeck.definition.validation.walk import _StepInfo


class _FileChecker(_ReferenceChecks, _CodeChecks, _TimingChecks):
    """The checks of one file that the schema cannot express (see `_CheckerBase`)."""

    def run(self) -> None:
        self._check_step_identity()
        self._check_references(self.data.get("steps"), ("steps",), set(), {})
        for step in self.steps:
            self._check_step(step)
        self._check_unreachable(self.data.get("steps"), ("steps",))
        self._check_input_schema_and_triggers()
        self._check_duration_bounds()

    def _check_step(self, step: _StepInfo) -> None:
        if step.type == "code":
            self._check_code(step)
        elif step.type == "wait":
            self._check_wait(step)
