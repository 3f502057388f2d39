"""The HTTP API as a caller uses it: `flowdeck api` in a subprocess, real HTTP, real Prefect.

Sync calls, the catalog and tool endpoints, auth, and every class of error (with the
proof that nothing was started for bad input). Async, webhooks and batches are in
test_api_async.py, load in test_api_load.py, the OpenAPI fuzz in test_api_fuzz.py.
"""

from __future__ import annotations

import json

import httpx
import pytest
from support.api import TOKEN, ApiServer, count_flow_runs
from support.cli import run_cli

EXECUTIONS = "/workflow/workflow-executions"


def test_sync_success_is_the_documented_body(api: ApiServer) -> None:
    with api.client() as client:
        response = client.post(
            EXECUTIONS, json={"workflow_id": "five_steps", "workflow_version": "latest", "input_data": {"n": 120}}
        )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "execution_id", "output"}
    assert body["status"] == "success"
    assert body["output"] == {
        "n": 120,
        "doubled": 240,
        "parity": "even",
        "size": "big",
        "execution_id": body["execution_id"],
    }


@pytest.mark.parametrize("version", ["latest", "1", 1])
def test_workflow_version_accepts_latest_string_and_number(api: ApiServer, version: object) -> None:
    with api.client() as client:
        response = client.post(
            EXECUTIONS, json={"workflow_id": "five_steps", "workflow_version": version, "input_data": {"n": 3}}
        )
    assert response.status_code == 200, response.text
    assert response.json()["output"]["parity"] == "odd"


def test_sync_failure_answers_200_with_the_step_and_no_secret(api: ApiServer, http_server) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-live-do-not-leak-4242"
    http_server.routes["POST /contacts"] = (500, {"detail": "CRM is down"})
    with api.client() as client:
        response = client.post(
            EXECUTIONS,
            json={"workflow_id": "crm_call", "input_data": {"crm_base_url": http_server.url, "api_key": secret}},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "failed"
        assert body["error"]["step_name"] == "Call CRM"
        assert "500" in body["error"]["message"]
        status = client.get(f"{EXECUTIONS}/{body['execution_id']}").json()
    # The step did send the secret (it is the CRM's key) ...
    assert http_server.calls[0]["headers"]["Authorization"] == f"Bearer {secret}"
    # ... but no answer and no log line of the API repeats it.
    assert secret not in response.text
    assert secret not in json.dumps(status)
    assert secret not in api.logs()


def test_sync_call_past_its_limit_answers_202_with_the_hand_off(api: ApiServer) -> None:
    with api.client() as client:
        response = client.post(EXECUTIONS, json={"workflow_id": "slow", "workflow_version": "latest"})
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "waiting"
        assert body["execution_id"].startswith("exec_")
        assert body["resume_at"]
        assert client.get(f"{EXECUTIONS}/{body['execution_id']}").json()["status"] == "waiting"
        client.post(f"{EXECUTIONS}/{body['execution_id']}/cancel")


def test_status_of_a_finished_sync_execution(api: ApiServer) -> None:
    with api.client() as client:
        started = client.post(EXECUTIONS, json={"workflow_id": "five_steps", "input_data": {"n": 7}}).json()
        status = client.get(f"{EXECUTIONS}/{started['execution_id']}")
        assert status.status_code == 200
        body = status.json()
        if body["status"] == "running":  # the final state is written just after the answer
            import time

            time.sleep(1)
            body = client.get(f"{EXECUTIONS}/{started['execution_id']}").json()
    assert body["status"] == "success"
    assert body["workflow_id"] == "five_steps" and body["workflow_version"] == 1 and body["mode"] == "sync"
    assert body["output"] == started["output"]


def test_catalog_lists_versions_statuses_and_input_schemas(api: ApiServer) -> None:
    with api.client() as client:
        listing = client.get("/workflow/workflows").json()
        detail = client.get("/workflow/workflows/needs_email").json()
        draft = client.get("/workflow/workflows/drafty").json()
    ids = [w["workflow_id"] for w in listing["workflows"]]
    assert ids == sorted(ids) and {"five_steps", "drafty", "published_only"} <= set(ids)
    assert detail["latest_version"] == 1
    assert detail["versions"][0]["status"] == "live"
    assert detail["versions"][0]["input_schema"]["required"] == ["email"]
    assert draft["latest_version"] is None and draft["versions"][0]["status"] == "draft"


def test_tool_is_a_function_calling_definition(api: ApiServer) -> None:
    with api.client() as client:
        tool = client.get("/workflow/workflows/needs_email/tool").json()
        missing = client.get("/workflow/workflows/drafty/tool")
    assert set(tool) == {"name", "description", "parameters"}
    assert tool["name"] == "needs_email"
    assert tool["parameters"]["type"] == "object"
    assert tool["parameters"]["properties"]["email"]["format"] == "email"
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "not_runnable"


# ----------------------------------------------------------------------------- errors


def _error(response: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert "Traceback" not in response.text
    return error  # type: ignore[no-any-return]


def test_invalid_input_names_each_field_and_starts_nothing(api: ApiServer, prefect_api: str) -> None:
    before = count_flow_runs(prefect_api, "needs_email")
    with api.client() as client:
        response = client.post(EXECUTIONS, json={"workflow_id": "needs_email", "input_data": {"tag": 5}})
        asynchronous = client.post(
            f"{EXECUTIONS}/async", json={"workflow_id": "needs_email", "input_data": {"email": "not an email"}}
        )
    error = _error(response, 422, "invalid_input")
    assert {d["field"] for d in error["details"]} == {"email", "tag"}
    assert _error(asynchronous, 422, "invalid_input")["details"][0]["field"] == "email"
    assert count_flow_runs(prefect_api, "needs_email") == before


def test_drafts_never_start_through_the_api(api: ApiServer, prefect_api: str) -> None:
    with api.client() as client:
        pinned = client.post(EXECUTIONS, json={"workflow_id": "drafty", "workflow_version": 1})
        latest = client.post(f"{EXECUTIONS}/async", json={"workflow_id": "drafty", "workflow_version": "latest"})
    assert "draft" in _error(pinned, 422, "not_runnable")["message"]
    _error(latest, 422, "not_runnable")
    assert count_flow_runs(prefect_api, "drafty") == 0


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"workflow_id": "nope"}, 404, "unknown_workflow"),
        ({"workflow_id": "five_steps", "workflow_version": 9}, 404, "unknown_version"),
        ({"workflow_id": "five_steps", "workflow_version": "v2"}, 422, "invalid_request"),
        ({"workflow_id": "five_steps", "workflow_version": True}, 422, "invalid_request"),
        ({"workflow_id": "five_steps", "input": {"n": 1}}, 422, "invalid_request"),
        ({"workflow_version": "latest"}, 422, "invalid_request"),
        ({"workflow_id": "five_steps", "input_data": [1]}, 422, "invalid_request"),
        ([1, 2], 422, "invalid_request"),
    ],
)
def test_bad_bodies(api: ApiServer, body: object, status: int, code: str) -> None:
    with api.client() as client:
        error = _error(client.post(EXECUTIONS, json=body), status, code)
    if code == "invalid_request":
        assert error["details"] and all({"field", "message"} <= set(d) for d in error["details"])


def test_malformed_json_is_400_and_oversized_is_413(api: ApiServer) -> None:
    with api.client() as client:
        broken = client.post(EXECUTIONS, content=b'{"workflow_id": ', headers={"Content-Type": "application/json"})
        huge = client.post(
            EXECUTIONS,
            content=b'{"workflow_id": "' + b"a" * (2 * 1024 * 1024) + b'"}',
            headers={"Content-Type": "application/json"},
        )

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b" " * 65536

        chunked = client.post(EXECUTIONS, content=chunks(), headers={"Content-Type": "application/json"})
    _error(broken, 400, "malformed_json")
    _error(huge, 413, "body_too_large")
    _error(chunked, 413, "body_too_large")


def test_unknown_execution_and_endpoint(api: ApiServer) -> None:
    with api.client() as client:
        _error(client.get(f"{EXECUTIONS}/exec_{'0' * 32}"), 404, "unknown_execution")
        _error(client.get(f"{EXECUTIONS}/whatever"), 404, "unknown_execution")
        _error(client.post(f"{EXECUTIONS}/exec_{'0' * 32}/cancel"), 404, "unknown_execution")
        _error(client.get("/workflow/nothing"), 404, "not_found")
        _error(client.delete(EXECUTIONS), 405, "method_not_allowed")


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_every_endpoint_but_health_and_docs_needs_the_token(api: ApiServer, headers: dict[str, str]) -> None:
    requests = [
        ("POST", EXECUTIONS, {"workflow_id": "five_steps", "input_data": {"n": 1}}),
        ("POST", f"{EXECUTIONS}/async", {"workflow_id": "five_steps"}),
        ("POST", f"{EXECUTIONS}/batch", {"workflow_id": "five_steps", "inputs": [{}]}),
        ("GET", f"{EXECUTIONS}/exec_{'0' * 32}", None),
        ("POST", f"{EXECUTIONS}/exec_{'0' * 32}/cancel", None),
        ("GET", "/workflow/workflows", None),
        ("GET", "/workflow/workflows/five_steps", None),
        ("GET", "/workflow/workflows/nope/tool", None),
        ("POST", "/workflow/hooks/open_hook", {"event": "x"}),
        ("GET", "/workflow/no-such-path", None),
    ]
    with httpx.Client(base_url=api.url, headers=headers) as client:
        for method, path, body in requests:
            response = client.request(method, path, json=body)
            error = _error(response, 401, "unauthorized")
            assert error["details"] is None
            assert response.headers["www-authenticate"] == "Bearer"
            assert "five_steps" not in response.text and "nope" not in response.text
        # Before the body is even parsed: a broken body without a token is still 401.
        assert client.post(EXECUTIONS, content=b"{", headers={"Content-Type": "application/json"}).status_code == 401
        health = client.get("/healthz").json()
        assert set(health) == {"status", "prefect", "prefect_answered_s_ago", "outbox"}
        assert (health["status"], health["prefect"]) == ("ok", "ok")
        assert set(health["outbox"]) == {"executions", "oldest_age_s", "limit", "drain_failures", "drain_last_error"}
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_api_refuses_to_start_without_a_token() -> None:
    result = run_cli("api", "--port", "1", env={"FLOWDECK_API_TOKENS": ""}, timeout=30)
    assert result.returncode == 2
    assert "no API token configured" in result.stderr and "--insecure-dev" in result.stderr
    assert "Traceback" not in result.stderr


def test_tokens_from_the_token_file(prefect_api: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    (home / "api_tokens").write_text("# rotated monthly\nfile-token-1\n\nfile-token-2  # the TUI\n")
    server = ApiServer(extra_env={"FLOWDECK_API_TOKENS": "", "FLOWDECK_HOME": str(home)})
    try:
        for token, status in [("file-token-1", 200), ("file-token-2", 200), ("# rotated monthly", 401), (TOKEN, 401)]:
            response = httpx.get(f"{server.url}/workflow/workflows", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, token
    finally:
        server.stop()


def test_openapi_describes_every_endpoint_and_the_bearer_scheme(api: ApiServer) -> None:
    spec = httpx.get(f"{api.url}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/workflow/workflow-executions",
        "/workflow/workflow-executions/async",
        "/workflow/workflow-executions/batch",
        "/workflow/workflow-executions/{execution_id}",
        "/workflow/workflow-executions/{execution_id}/cancel",
        "/workflow/workflows",
        "/workflow/workflows/{workflow_id}",
        "/workflow/workflows/{workflow_id}/tool",
        "/workflow/hooks/{workflow_id}",
        "/healthz",
    }
    sync = paths["/workflow/workflow-executions"]["post"]
    assert {"200", "202", "400", "401", "404", "413", "422"} <= set(sync["responses"])
    assert sync["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/healthz"]["get"]
