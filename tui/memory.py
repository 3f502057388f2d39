"""The last inputs a launch used, per workflow, kept in FLOWDECK_HOME
(`settings.dashboard_inputs_file()`) and offered the next time the form opens.

Bounded: at most `MAX_WORKFLOWS` workflows and `MAX_BYTES` per input; an unreadable or
corrupt file is treated as empty (the form then shows the schema's defaults), never a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flowdeck import settings

__all__ = ["LaunchMemory"]

MAX_WORKFLOWS = 200
MAX_BYTES = 64_000  # one remembered input; a bigger one is not kept


class LaunchMemory:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or settings.dashboard_inputs_file()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def last(self, workflow_id: str) -> dict[str, Any] | None:
        value = self._read().get(workflow_id)
        return value if isinstance(value, dict) else None

    def remember(self, workflow_id: str, input_data: dict[str, Any]) -> None:
        text = json.dumps(input_data, default=str)
        if len(text) > MAX_BYTES:
            return
        data = self._read()
        data.pop(workflow_id, None)
        data[workflow_id] = input_data  # newest last: the oldest go first past the bound
        while len(data) > MAX_WORKFLOWS:
            data.pop(next(iter(data)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
            os.replace(temporary, self.path)  # never a half-written file
        except OSError:
            return  # a read-only home: the form still works, it just does not remember
