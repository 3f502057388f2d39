"""Red team on the API's body bounds (`flows/api/limits.py`): getting a body past the strict
parse by how it is labelled or spelled.

The body middleware checked a body as JSON only when its Content-Type held the bytes
`json`; FastAPI reads a body as JSON when the media type is `application/json` or
`application/*+json`, case-insensitively. `Content-Type: application/JSON` therefore went
straight to the handler with NaN or an integer past 64 bits in `input_data`: before the fix
the API answered 200 and the input reached Prefect (the flow run was created).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.api import ApiServer
from test_bounds_api import ASYNC, DEFINITIONS, HOOK, SYNC, count_flow_runs, nested, start_body

SPELLINGS = ["application/JSON", "Application/Json; charset=utf-8", "APPLICATION/VND.FLOWDECK+JSON"]


@pytest.fixture(scope="module")
def api_server(prefect_api: str) -> Iterator[ApiServer]:
    server = ApiServer(definitions=DEFINITIONS)
    yield server
    server.stop()


@pytest.mark.parametrize("content_type", SPELLINGS)
@pytest.mark.parametrize("literal", ["NaN", "18446744073709551616"])
def test_json_labelled_in_capitals_is_still_held_to_the_bounds(api_server, prefect_api, content_type, literal):
    before = count_flow_runs(prefect_api, "open_input")
    with api_server.client() as client:
        for path in (SYNC, ASYNC):
            response = client.post(
                path, content=start_body(f'{{"x": {literal}}}'), headers={"Content-Type": content_type}
            )
            assert response.status_code == 400, (path, content_type, response.status_code, response.text[:300])
            assert response.json()["error"]["code"] == "malformed_json"
    assert count_flow_runs(prefect_api, "open_input") == before


def test_deep_input_labelled_in_capitals_is_422(api_server):
    body = start_body(str(nested(900)).replace("'", '"'))
    with api_server.client() as client:
        response = client.post(SYNC, content=body, headers={"Content-Type": "Application/JSON"})
    assert response.status_code == 422, response.text[:300]


def test_a_body_labelled_as_text_starts_nothing(api_server, prefect_api):
    """Held: FastAPI does not read a text/plain body as JSON, so the unchecked body is refused."""
    before = count_flow_runs(prefect_api, "open_input")
    with api_server.client() as client:
        response = client.post(SYNC, content=start_body('{"x": NaN}'), headers={"Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500, response.text[:300]
    assert count_flow_runs(prefect_api, "open_input") == before


def test_duplicate_keys_cannot_hide_a_deep_input(api_server, prefect_api):
    """Held: the middleware and FastAPI both keep the last of duplicate keys, so the value the
    handler sees is the one that was checked, whichever of the two is the hostile one."""
    deep = str(nested(900)).replace("'", '"')
    before = count_flow_runs(prefect_api, "open_input")
    with api_server.client() as client:
        hidden_first = f'{{"workflow_id": "open_input", "input_data": {deep}, "input_data": {{"a": 1}}}}'
        ok = client.post(SYNC, content=hidden_first.encode(), headers={"Content-Type": "application/json"})
        assert ok.status_code == 200 and ok.json()["output"] == {"keys": 1}, ok.text[:300]
        hidden_last = f'{{"workflow_id": "open_input", "input_data": {{"a": 1}}, "input_data": {deep}}}'
        refused = client.post(SYNC, content=hidden_last.encode(), headers={"Content-Type": "application/json"})
        assert refused.status_code == 422, refused.text[:300]
    assert count_flow_runs(prefect_api, "open_input") == before + 1


def test_a_webhook_body_is_checked_whatever_its_label(api_server):
    with api_server.client() as client:
        response = client.post(HOOK, content=b'{"x": NaN}', headers={"Content-Type": "text/plain"})
    assert response.status_code == 400, response.text[:300]
