"""Errors flowdeck raises, each carrying a message a person can act on.

Each class says how the surfaces answer it: `exit_code` (the `flowdeck` command), `http_status`
and `code` (the HTTP API's error envelope). A subclass inherits what it does not set.

    class                       exit  HTTP  code
    FlowdeckError               1     409   error                 base; str() is the user-facing message
    ├── NotFound                2     404   not_found             something named does not exist
    │   ├── UnknownWorkflow     2     404   unknown_workflow
    │   ├── UnknownVersion      2     404   unknown_version
    │   └── UnknownExecution    2     404   unknown_execution
    ├── InvalidInput            2     422   invalid_input         input_data breaks the input schema
    ├── NotRunnable             2     422   not_runnable          e.g. a draft asked for through the API
    ├── AlreadyEnded            1     409   already_ended         cancelling an execution that has ended
    ├── ConfigurationError      2     409   invalid_configuration a setting or option that cannot work
    ├── PrefectUnavailable      3     503   prefect_unavailable   the Prefect API cannot be reached
    ├── StepError               1     409   step_failed           a step failed; the execution fails
    │   ├── ExpressionError     1     409   expression_error      a JSONata template failed
    │   └── SandboxUnavailable  1     409   step_failed           this host cannot isolate code steps
    │                                                             (flowdeck.runtime.sandbox.launcher)
    └── NoTokens                2     409   no_api_tokens         `flowdeck api` without a token
                                                                  (flowdeck.api.auth)

Exit codes: 0 success, 1 the execution (or the request) failed, 2 nothing was started (what
was given is wrong), 3 Prefect cannot be reached. An API answer is the envelope
{"error": {"code", "message", "details"}} with `http_status` (flowdeck.api.errors).
"""

from __future__ import annotations

from typing import Any


class FlowdeckError(Exception):
    """Base class; `str(error)` is meant to be shown to a user as it is."""

    code = "error"
    exit_code = 1
    http_status = 409

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(FlowdeckError):
    code = "not_found"
    exit_code = 2
    http_status = 404


class UnknownWorkflow(NotFound):
    code = "unknown_workflow"


class UnknownVersion(NotFound):
    code = "unknown_version"


class UnknownExecution(NotFound):
    code = "unknown_execution"


class InvalidInput(FlowdeckError):
    """`details` is a list of {"field": "customer_email", "message": "..."}."""

    code = "invalid_input"
    exit_code = 2
    http_status = 422


class NotRunnable(FlowdeckError):
    code = "not_runnable"
    exit_code = 2
    http_status = 422


class AlreadyEnded(FlowdeckError):
    code = "already_ended"


class ConfigurationError(FlowdeckError):
    """A setting or option that cannot work as given (says which, and what to give)."""

    code = "invalid_configuration"
    exit_code = 2


class PrefectUnavailable(FlowdeckError):
    code = "prefect_unavailable"
    exit_code = 3
    http_status = 503


class StepError(FlowdeckError):
    """A step failed. The engine records it as the execution's error with the step's name."""

    code = "step_failed"


class ExpressionError(StepError):
    code = "expression_error"
