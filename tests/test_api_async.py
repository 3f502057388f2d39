"""Async starts over HTTP: submit and poll, idempotency, cancel, webhooks, batches.

A real `flowdeck worker` (the `start_worker` fixture) runs what the API starts.
"""

from __future__ import annotations

import time

import httpx
from support.api import API_DEFINITIONS, ApiServer, count_flow_runs, wait_for_status
from support.prefect import auth_headers

from flowdeck.store import encoding

EXECUTIONS = "/workflow/workflow-executions"


def test_async_start_poll_idempotency_and_cancel(api: ApiServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker(API_DEFINITIONS)
    with api.client() as client:
        started = client.post(
            f"{EXECUTIONS}/async",
            json={
                "workflow_id": "needs_email",
                "workflow_version": "latest",
                "input_data": {"email": "a@b.co", "tag": "x"},
            },
            headers={"Idempotency-Key": "order-77"},
        )
        assert started.status_code == 202
        body = started.json()
        assert body == {"status": "pending", "execution_id": body["execution_id"]}
        again = client.post(
            f"{EXECUTIONS}/async",
            json={"workflow_id": "needs_email", "input_data": {"email": "a@b.co", "tag": "x"}},
            headers={"Idempotency-Key": "order-77"},
        )
        assert again.status_code == 202 and again.json()["execution_id"] == body["execution_id"]

        done = wait_for_status(client, body["execution_id"], {"success", "failed"})
        assert done["status"] == "success", done
        assert done["output"] == {"email": "a@b.co", "tag": "x", "trigger_type": "manual"}
        assert done["mode"] == "async"

        slow = client.post(f"{EXECUTIONS}/async", json={"workflow_id": "slow"}).json()
        wait_for_status(client, slow["execution_id"], {"waiting"})
        cancelled = client.post(f"{EXECUTIONS}/{slow['execution_id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json() == {"status": "cancelled", "execution_id": slow["execution_id"]}
        assert client.get(f"{EXECUTIONS}/{slow['execution_id']}").json()["status"] == "cancelled"
        ended = client.post(f"{EXECUTIONS}/{slow['execution_id']}/cancel")
        assert ended.status_code == 409 and ended.json()["error"]["code"] == "already_ended"


def test_webhooks(api: ApiServer, start_worker, prefect_api: str) -> None:  # type: ignore[no-untyped-def]
    start_worker(API_DEFINITIONS)
    with api.client() as client:
        # A body that is a valid input is the input too ...
        valid = client.post("/workflow/hooks/open_hook", json={"event": "signup", "user": 7})
        # ... any other JSON is only the payload, and the input is {}.
        other = client.post("/workflow/hooks/open_hook", json=[1, 2, 3])
        empty = client.post("/workflow/hooks/open_hook")
        for response in (valid, other, empty):
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "pending"
        first = wait_for_status(client, valid.json()["execution_id"], {"success", "failed"})
        second = wait_for_status(client, other.json()["execution_id"], {"success", "failed"})
        assert first["output"] == {
            "event": "signup",
            "payload": {"event": "signup", "user": 7},
            "trigger_type": "webhook",
        }
        assert second["output"]["payload"] == [1, 2, 3] and second["output"]["event"] is None

        before = count_flow_runs(prefect_api, "needs_email")
        needs = client.post("/workflow/hooks/needs_email", json={"mail": "x"})
        assert needs.status_code == 422
        assert needs.json()["error"]["details"] == [{"field": "email", "message": "is required"}]
        assert count_flow_runs(prefect_api, "needs_email") == before

        not_live = client.post("/workflow/hooks/published_only", json={})
        assert not_live.status_code == 422 and "live" in not_live.json()["error"]["message"]
        assert client.post("/workflow/hooks/drafty", json={}).status_code == 422
        assert client.post("/workflow/hooks/nope", json={}).status_code == 404
        broken = client.post(
            "/workflow/hooks/open_hook", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"


def test_batch_runs_every_input_in_order(api: ApiServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker(API_DEFINITIONS)
    emails = [f"user{i}@example.com" for i in range(5)]
    with api.client() as client:
        response = client.post(
            f"{EXECUTIONS}/batch",
            json={"workflow_id": "needs_email", "workflow_version": 1, "inputs": [{"email": e} for e in emails]},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["workflow_id"] == "needs_email" and body["workflow_version"] == 1
        outputs = [
            wait_for_status(client, each["execution_id"], {"success", "failed"})["output"]["email"]
            for each in body["executions"]
        ]
    assert outputs == emails


def test_batch_with_an_invalid_input_starts_nothing(api: ApiServer, prefect_api: str) -> None:
    before = count_flow_runs(prefect_api, "needs_email")
    inputs = [{"email": "ok@example.com"}] * 10
    inputs[3] = {"email": "nope"}
    inputs[7] = {}
    with api.client() as client:
        response = client.post(f"{EXECUTIONS}/batch", json={"workflow_id": "needs_email", "inputs": inputs})
        too_many = client.post(f"{EXECUTIONS}/batch", json={"workflow_id": "needs_email", "inputs": [{}] * 1001})
        none = client.post(f"{EXECUTIONS}/batch", json={"workflow_id": "needs_email", "inputs": []})
    assert response.status_code == 422
    error = response.json()["error"]
    assert [d["field"] for d in error["details"]] == ["inputs[3].email", "inputs[7].email"]
    assert "index 3, 7" in error["message"] and "nothing was started" in error["message"]
    assert too_many.status_code == 422 and too_many.json()["error"]["details"][0]["field"] == "inputs"
    assert none.status_code == 422
    assert count_flow_runs(prefect_api, "needs_email") == before


def test_batch_of_1000_in_one_call(api: ApiServer, prefect_api: str) -> None:
    """No worker here: the runs are only created (what the call promises) and checked for
    order. They stay pending; `batch_sink` is one trivial step, so a worker that meets them
    later in the session runs them in moments."""
    inputs = [{"tag": str(i)} for i in range(1000)]
    with api.client(timeout=300) as client:
        began = time.perf_counter()
        response = client.post(
            f"{EXECUTIONS}/batch",
            json={"workflow_id": "batch_sink", "inputs": inputs},
            headers={"Idempotency-Key": "big-batch"},
        )
        elapsed = time.perf_counter() - began
    assert response.status_code == 202, response.text
    ids = [each["execution_id"] for each in response.json()["executions"]]
    assert len(set(ids)) == 1000
    assert elapsed < 240, f"a batch of 1000 took {elapsed:.1f}s"
    # the answer means committed (the outbox); Prefect has them once the drain wrote them
    deadline = time.monotonic() + 120
    while count_flow_runs(prefect_api, "batch_sink") < 1000 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert count_flow_runs(prefect_api, "batch_sink") == 1000
    for index in (0, 1, 499, 999):
        query = {"flow_runs": encoding.execution_filter([ids[index]]), "limit": 2}
        runs = httpx.post(f"{prefect_api}/flow_runs/filter", json=query, headers=auth_headers()).json()
        assert len(runs) == 1 and runs[0]["parameters"]["tag"] == str(index)
    print(f"batch of 1000: {elapsed:.2f}s ({1000 / elapsed:.0f} starts/s)")
