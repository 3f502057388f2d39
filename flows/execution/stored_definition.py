"""An execution runs the definition it started with.

Every flow run flowdeck creates carries its definition's file content in its context
(`flowdeck.definition`: path and text, written with the execution into the outbox), so a
worker that resumes, retries or takes over an execution builds the definition from that
text, not from the file as it is now: editing, deleting or breaking the file never changes
or strands an execution in flight. Runs without it (schedule runs Prefect makes, runs from
the Prefect UI, runs made before this) use the catalog.
"""

from __future__ import annotations

import hashlib

from prefect.client.schemas.objects import FlowRun

from flowdeck.definition.catalog import build_definition
from flowdeck.definition.model import WorkflowDefinition
from flowdeck.definition.validation.files import check_text
from flowdeck.store import encoding

_CACHE_SIZE = 256
_built: dict[str, WorkflowDefinition | None] = {}


def stored_definition(flow_run: FlowRun, workflow_id: str, version: int) -> WorkflowDefinition | None:
    """The definition stored with the run, if it has one that builds and names this
    workflow and version (None: use the catalog)."""
    source = encoding.definition_source_of(flow_run)
    if not isinstance(source, dict) or not isinstance(source.get("text"), str):
        return None
    text, path = source["text"], str(source.get("path") or f"{workflow_id}.yaml")
    key = hashlib.blake2b(f"{path}\0{text}".encode(), digest_size=16).hexdigest()
    if key not in _built:
        checked = check_text(text, path)
        if len(_built) >= _CACHE_SIZE:
            _built.pop(next(iter(_built)))
        _built[key] = None if checked.has_errors else build_definition(checked)
    definition = _built[key]
    if definition is None or (definition.id, definition.version) != (workflow_id, version):
        return None
    return definition
