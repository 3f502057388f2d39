"""Property-based fuzz of /openapi.json (schemathesis) on a bounded budget.

Generated requests (valid and invalid, with the token) against the real `flowdeck api`:
no answer may be a 5xx, and every answer must match the spec (status code documented,
content type, body schema). No worker runs, so anything that does start stays pending.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.api import AUTH, ApiServer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(api: ApiServer):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_conform_to_the_spec(case, api: ApiServer) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=api.url, headers=AUTH, checks=CHECKS)
