"""Sentences about places in a definition: "http step 'fetch'", "'timeout' in trigger 1".

Every message names the step and the field it is about, never a JSON path; these helpers
turn a data path (and the value found there) into those words.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from flowdeck.definition.validation.report import STEP_TYPES
from flowdeck.definition.yaml_source import DataPath

KIND_NAMES = {  # JSON Schema types as a YAML author says them
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json_kind(value)
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    pool = list(candidates)
    lowered = {candidate.lower(): candidate for candidate in pool}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _is_steps_list(path: DataPath) -> bool:
    """True for the paths of step lists: `steps`, a branch's `steps`, a condition's `default`."""
    if path == ("steps",):
        return True
    if len(path) >= 4 and path[-1] == "steps" and isinstance(path[-2], int) and path[-3] == "branches":
        return _is_step(path[:-3])
    if len(path) >= 3 and path[-1] == "default":
        return _is_step(path[:-1])
    return False


def _is_step(path: DataPath) -> bool:
    return len(path) >= 2 and isinstance(path[-1], int) and _is_steps_list(path[:-1])


def _is_branch(path: DataPath) -> bool:
    return len(path) >= 3 and isinstance(path[-1], int) and path[-2] == "branches" and _is_step(path[:-2])


def _get(data: Any, path: DataPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _last_index(path: DataPath) -> int:
    """The list index that ends the path of a step, a branch or a trigger."""
    last = path[-1]
    if not isinstance(last, int):
        raise ValueError(f"{path!r} does not end with a list index")
    return last


def _step_label(step: Any, index: int) -> str:
    step = step if isinstance(step, dict) else {}
    kind = step.get("type")
    prefix = f"{kind} step" if kind in STEP_TYPES else "step"
    step_id = step.get("id")
    return f"{prefix} '{step_id}'" if isinstance(step_id, str) else f"{prefix} #{index + 1}"


def _describe(data: Any, path: DataPath) -> str:
    """A phrase for the mapping at `path`: "http step 'fetch'", "trigger 1", "workflow 'x'"."""
    path = tuple(path)
    if not path:
        workflow_id = data.get("id") if isinstance(data, dict) else None
        return f"workflow '{workflow_id}'" if isinstance(workflow_id, str) else "the workflow"
    if _is_step(path):
        return _step_label(_get(data, path), _last_index(path))
    if _is_branch(path):
        branch = _get(data, path)
        name = branch.get("name") if isinstance(branch, dict) else None
        label = f"branch '{name}'" if isinstance(name, str) else f"branch {_last_index(path) + 1}"
        return f"{label} of {_describe(data, path[:-2])}"
    if path == ("retries",):
        return "retries"
    if path[0] == "input":
        return "the input schema"
    if len(path) == 2 and path[0] == "triggers" and isinstance(path[1], int):
        return f"trigger {path[1] + 1}"
    return _subject(data, path)


def _is_named_container(path: DataPath) -> bool:
    """Places `_describe` names by themselves (the workflow, steps, branches, triggers)."""
    return (
        path == ()
        or _is_step(path)
        or _is_branch(path)
        or path == ("retries",)
        or (len(path) == 2 and path[0] == "triggers" and isinstance(path[1], int))
    )


def _subject(data: Any, path: DataPath) -> str:
    """A phrase for the value at `path`, named after its field: "'timeout' in http step 'fetch'"."""
    path = tuple(path)
    if _is_named_container(path):
        return _describe(data, path)
    container = path
    while not _is_named_container(container):
        container = container[:-1]
    name = ""
    for part in path[len(container) :]:
        if isinstance(part, int):
            name += f"[{part + 1}]"
        else:
            name += f".{part}" if name else str(part)
    return f"'{name}' in {_describe(data, container)}"
