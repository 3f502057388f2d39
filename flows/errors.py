"""Errors flowdeck raises, each carrying a message a person can act on.

    FlowdeckError                  base of everything below; str() is the user-facing message
    ├── DefinitionError            definitions failed validation (carries the problems)
    ├── NotFound                   something named does not exist (exit 2 / HTTP 404)
    │   ├── UnknownWorkflow
    │   ├── UnknownVersion
    │   └── UnknownExecution
    ├── InvalidInput               input_data does not satisfy the input schema (exit 2 / 422)
    ├── NotRunnable                e.g. a draft asked for through the API or a trigger
    ├── AlreadyEnded               cancelling an execution that has ended (HTTP 409)
    ├── PrefectUnavailable         the Prefect API cannot be reached
    ├── StepError                  a step failed; the execution fails with this message
    └── ExpressionError            a JSONata template failed to parse or evaluate (a StepError)
"""

from __future__ import annotations

from typing import Any


class FlowdeckError(Exception):
    """Base class; `str(error)` is meant to be shown to a user as it is."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class DefinitionError(FlowdeckError):
    code = "invalid_definition"


class NotFound(FlowdeckError):
    code = "not_found"


class UnknownWorkflow(NotFound):
    code = "unknown_workflow"


class UnknownVersion(NotFound):
    code = "unknown_version"


class UnknownExecution(NotFound):
    code = "unknown_execution"


class InvalidInput(FlowdeckError):
    """`details` is a list of {"field": "customer_email", "message": "..."}."""

    code = "invalid_input"


class NotRunnable(FlowdeckError):
    code = "not_runnable"


class AlreadyEnded(FlowdeckError):
    code = "already_ended"


class ConfigurationError(FlowdeckError):
    """A setting or option that cannot work as given (says which, and what to give)."""

    code = "invalid_configuration"


class PrefectUnavailable(FlowdeckError):
    code = "prefect_unavailable"


class StepError(FlowdeckError):
    """A step failed. The engine records it as the execution's error with the step's name."""

    code = "step_failed"


class ExpressionError(StepError):
    code = "expression_error"
