"""Proof that flowdeck itself started a flow run, so a worker can refuse one it did not.

Anyone holding the Prefect credential (a teammate in the Prefect UI, a script with
PREFECT_API_AUTH_STRING) can create a flow run with any tags, labels and context. Runs of
published and live versions are fine to start that way: that is what the Prefect UI is for.
A run tagged as a **draft** is not (drafts run only when pinned from the CLI or the
dashboard), and neither is a run that carries its own definition text in its context
(which the worker would otherwise run instead of the file).

So every flow run flowdeck creates carries the label `flowdeck.pin`: an HMAC-SHA256, under
a key only flowdeck's processes hold (`$FLOWDECK_HOME/pin_key`, mode 0600, or FLOWDECK_PIN_KEY; never the Prefect
credential, which people are given), over the workflow id, version, input and definition
text the run was created with. The worker checks it before it claims a draft or
a run with a definition in its context, and a run whose pin does not match (its input or
definition changed afterwards) is refused whatever its version.

What a pin does not stop: someone with the Prefect credential copying a pinned run's input,
labels and context into a new run re-runs exactly that execution (same draft, same input,
same definition), nothing else. docs/security.md says the same.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from prefect.client.schemas.objects import FlowRun

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.local import credentials
from flowdeck.store import encoding

__all__ = ["pin_labels", "refusal"]


def _digest(workflow_id: str, version: int, parameters: Any, source: Any) -> str:
    message = json.dumps(
        [workflow_id, version, parameters, source],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hmac.new(credentials.pin_key(), message.encode(), hashlib.sha256).hexdigest()


def pin_labels(definition: WorkflowDefinition, parameters: dict[str, Any], source: Any = None) -> dict[str, str]:
    """The label every flow run flowdeck creates carries (`source`: the definition stored
    in the run's context, if any)."""
    return {encoding.PIN_LABEL: _digest(definition.id, definition.version, parameters, source)}


def refusal(flow_run: FlowRun, definition: WorkflowDefinition) -> str | None:
    """Why a worker may not run `flow_run` as `definition`, or None when it may."""
    pin = (flow_run.labels or {}).get(encoding.PIN_LABEL)
    source = encoding.definition_source_of(flow_run)
    if pin is None:
        if definition.status == "draft":
            return (
                f"'{definition.key}' is a draft and this run was not started from the flowdeck CLI or "
                "dashboard (it carries no flowdeck pin); drafts run only when pinned there"
            )
        if source is not None:
            return "the run carries its own definition text but no flowdeck pin: flowdeck did not create it"
        return None  # a published or live version, started from the Prefect UI or API
    expected = _digest(definition.id, definition.version, flow_run.parameters or {}, source)
    if not isinstance(pin, str) or not hmac.compare_digest(pin, expected):
        return (
            "its flowdeck pin does not match its workflow, version, input and definition: "
            "the run was changed after flowdeck created it, or flowdeck did not create it"
        )
    return None
