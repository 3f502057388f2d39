"""The workflow JSON Schema, read from the installed package.

`schemas/workflow.schema.json` in the repository is the one source: editors reference it by
that path, and packaging installs the same file as `flowdeck.schemas` (pyproject's
`package-dir`), so a non-editable install validates exactly what the editor shows.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["WORKFLOW_SCHEMA", "load_schema"]

WORKFLOW_SCHEMA = "workflow.schema.json"


@cache
def load_schema(name: str = WORKFLOW_SCHEMA) -> dict[str, Any]:
    """The named schema of `flowdeck.schemas`, parsed once per process."""
    text = resources.files("flowdeck.schemas").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
