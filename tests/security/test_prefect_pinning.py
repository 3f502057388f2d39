"""The pin itself (flowdeck.execution.pinning), without a server: what a worker accepts.

The attacks through a real worker are in test_prefect_refusal.py; here, the cases a forger
would try on the label and on a run's input, and the key a cluster shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import FlowRun

from flowdeck.definition.catalog import load_catalog
from flowdeck.errors import ConfigurationError
from flowdeck.execution import pinning

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
KEY_A, KEY_B = "a" * 64, "b" * 64


def definition(version: int) -> Any:
    return load_catalog(DEFINITIONS).resolve("guarded_lead", version, allow_draft=True)


def flow_run(parameters: dict[str, Any], labels: dict[str, Any], context: dict[str, Any] | None = None) -> FlowRun:
    return FlowRun(id=uuid4(), flow_id=uuid4(), name="x", parameters=parameters, labels=labels, context=context or {})


def test_a_pinned_draft_is_accepted_and_any_change_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_PIN_KEY", KEY_A)
    draft = definition(3)
    labels = pinning.pin_labels(draft, {"budget": 7})
    assert pinning.refusal(flow_run({"budget": 7}, labels), draft) is None
    changed_input = pinning.refusal(flow_run({"budget": 8}, labels), draft)
    assert changed_input and "does not match" in changed_input
    source = {"path": "v3.yaml", "text": "id: guarded_lead"}
    added_definition = pinning.refusal(flow_run({"budget": 7}, labels, {"flowdeck": {"definition": source}}), draft)
    assert added_definition and "does not match" in added_definition
    # the same pin on another version (a published one) is refused too
    assert pinning.refusal(flow_run({"budget": 7}, labels), definition(1))


def test_a_pin_made_under_another_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_PIN_KEY", KEY_A)
    draft = definition(3)
    labels = pinning.pin_labels(draft, {})
    monkeypatch.setenv("FLOWDECK_PIN_KEY", KEY_B)
    refused = pinning.refusal(flow_run({}, labels), draft)
    assert refused and "does not match" in refused


def test_a_published_run_needs_no_pin_but_a_draft_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_PIN_KEY", KEY_A)
    assert pinning.refusal(flow_run({}, {}), definition(1)) is None
    refused = pinning.refusal(flow_run({}, {}), definition(3))
    assert refused and "is a draft" in refused


def test_a_short_shared_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_PIN_KEY", "short")
    with pytest.raises(ConfigurationError, match="at least 32"):
        pinning.pin_labels(definition(3), {})
