"""The definition stage: YAML files in, validated `WorkflowDefinition`s out, with no I/O
beyond reading the files and no Prefect (the runtime and everything above build on it).

    yaml_source   YAML with positions (line, column of every value) and duplicate keys
    schema        the workflow JSON Schema, read from the installed `flowdeck.schemas`
    validation/   every check, reported as `PATH:LINE:COL: error: MESSAGE` (see its docstring)
    model         the validated definition: frozen dataclasses, one per step type
    catalog       a directory of definitions: validate, build, resolve `latest` and versions
    expressions   JSONata templates (`{{ }}`): syntax checks, what they read, evaluation
    durations     `500ms` / `90s` / `15m` ... parsed to seconds, and `format_seconds`, the one
                  formatter of durations for messages and the dashboard

What the other layers use is listed in `__all__` and importable from here; each name is
loaded on first use, so `from flowdeck.definition.durations import format_seconds` (the
dashboard) does not pay for jsonschema or JSONata.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdeck.definition import expressions
    from flowdeck.definition.catalog import Catalog, default_definitions_dir, load_catalog
    from flowdeck.definition.durations import format_seconds, parse_duration, wait_duration_seconds
    from flowdeck.definition.model import ConditionStep, Step, WaitStep, WorkflowDefinition
    from flowdeck.definition.validation import Problem, validate_paths

# name -> the module that defines it (the step types not listed live in `model`)
_HOMES = {
    "expressions": "flowdeck.definition.expressions",
    "Catalog": "flowdeck.definition.catalog",
    "default_definitions_dir": "flowdeck.definition.catalog",
    "load_catalog": "flowdeck.definition.catalog",
    "format_seconds": "flowdeck.definition.durations",
    "parse_duration": "flowdeck.definition.durations",
    "wait_duration_seconds": "flowdeck.definition.durations",
    "ConditionStep": "flowdeck.definition.model",
    "Step": "flowdeck.definition.model",
    "WaitStep": "flowdeck.definition.model",
    "WorkflowDefinition": "flowdeck.definition.model",
    "Problem": "flowdeck.definition.validation",
    "validate_paths": "flowdeck.definition.validation",
}

__all__ = [
    "expressions",
    "Catalog",
    "default_definitions_dir",
    "load_catalog",
    "format_seconds",
    "parse_duration",
    "wait_duration_seconds",
    "ConditionStep",
    "Step",
    "WaitStep",
    "WorkflowDefinition",
    "Problem",
    "validate_paths",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if home.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value
