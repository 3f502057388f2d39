"""Attacks on the HTTP API's input: JSON Prefect cannot hold, JSON that is not JSON, inputs
over Prefect's parameter limit, a run Prefect cannot serialise, hostile expressions.

Every refusal happens before anything reaches Prefect (the flow-run count of the workflow
stays 0), with a 4xx that names what is wrong; and /healthz keeps answering in
milliseconds while hostile expressions run.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.api import ApiServer
from support.cli import run_cli

from flowdeck.runtime.input_bounds import MAX_INPUT_BYTES, MAX_JSON_DEPTH, MAX_WEBHOOK_BYTES

DEFINITIONS = Path(__file__).parent / "bounds_definitions"
SYNC = "/workflow/workflow-executions"
ASYNC = "/workflow/workflow-executions/async"
BATCH = "/workflow/workflow-executions/batch"
HOOK = "/workflow/hooks/open_input"
JSON_HEADERS = {"Content-Type": "application/json"}


def prefect(prefect_api: str) -> httpx.Client:
    """The suite's Prefect, with the credential flowdeck's own processes get (when it has one)."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        from flowdeck.local.credentials import prefect_auth_file

        auth = prefect_auth_file().read_text().strip() if prefect_auth_file().exists() else None
    basic = tuple(auth.split(":", 1)) if auth and ":" in auth else None
    return httpx.Client(base_url=prefect_api, auth=basic, timeout=10)  # type: ignore[arg-type]


def count_flow_runs(prefect_api: str, workflow_id: str) -> int:
    """Flow runs Prefect holds for a workflow: proves that nothing was started."""
    with prefect(prefect_api) as client:
        response = client.post("/flow_runs/count", json={"flow_runs": {"tags": {"all_": [f"workflow:{workflow_id}"]}}})
    response.raise_for_status()
    return int(response.json())


@pytest.fixture(scope="module")
def bounds_api(prefect_api: str) -> Iterator[ApiServer]:
    server = ApiServer(definitions=DEFINITIONS)
    yield server
    server.stop()


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def start_body(input_json: str, workflow: str = "open_input") -> bytes:
    return f'{{"workflow_id": "{workflow}", "input_data": {input_json}}}'.encode()


def post_raw(client: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    return client.post(path, content=raw, headers=JSON_HEADERS)


def test_input_nested_900_levels_is_refused_and_prefect_stays_readable(bounds_api, prefect_api):
    bounds_api.wait_drained()
    before = count_flow_runs(prefect_api, "open_input")
    with bounds_api.client() as client:
        response = client.post(SYNC, json={"workflow_id": "open_input", "input_data": nested(900)})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert f"nests deeper than {MAX_JSON_DEPTH} levels" in response.json()["error"]["message"]
        assert count_flow_runs(prefect_api, "open_input") == before
        with prefect(prefect_api) as client:
            assert client.post("/flow_runs/filter", json={"limit": 5}).status_code == 200


def test_input_depth_at_the_bound_runs(bounds_api):
    with bounds_api.client() as client:
        ok = client.post(SYNC, json={"workflow_id": "open_input", "input_data": nested(MAX_JSON_DEPTH)})
        assert ok.status_code == 200 and ok.json()["status"] == "success", ok.text
        over = client.post(SYNC, json={"workflow_id": "open_input", "input_data": nested(MAX_JSON_DEPTH + 1)})
        assert over.status_code == 422, over.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "1" * 5000])
def test_numbers_json_does_not_have_are_malformed_json(bounds_api, prefect_api, literal):
    bounds_api.wait_drained()
    before = count_flow_runs(prefect_api, "open_input")
    with bounds_api.client() as client:
        for path, raw in (
            (SYNC, start_body(f'{{"x": {literal}}}')),
            (ASYNC, start_body(f'{{"x": [1, {literal}]}}')),
            (HOOK, f'{{"x": {literal}}}'.encode()),
            (BATCH, f'{{"workflow_id": "open_input", "inputs": [{{}}, {{"x": {literal}}}]}}'.encode()),
        ):
            response = post_raw(client, path, raw)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["code"] == "malformed_json", (path, response.text)
    assert count_flow_runs(prefect_api, "open_input") == before


def test_lone_surrogate_is_refused_naming_the_field(bounds_api):
    with bounds_api.client() as client:
        response = post_raw(client, SYNC, start_body('{"name": "a\\ud800b"}'))
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"] == [
            {"field": "input_data.name", "message": response.json()["error"]["details"][0]["message"]}
        ]
        assert "lone surrogate" in response.json()["error"]["message"]
        hook = post_raw(client, HOOK, b'{"name": "\\udfff"}')
        assert hook.status_code == 422 and "lone surrogate" in hook.text


def test_hundred_thousand_deep_json_is_a_4xx_everywhere(bounds_api):
    deep = "[" * 100_000 + "]" * 100_000
    with bounds_api.client() as client:
        for path, raw in (
            (SYNC, start_body(f'{{"x": {deep}}}')),
            (HOOK, deep.encode()),
            (BATCH, f'{{"workflow_id": "open_input", "inputs": [{{"x": {deep}}}]}}'.encode()),
        ):
            response = post_raw(client, path, raw)
            assert response.status_code == 422, (path, response.status_code, response.text[:300])
            assert "nests deeper" in response.json()["error"]["message"]


def test_input_over_prefects_parameter_limit_is_413_not_503(bounds_api, prefect_api):
    bounds_api.wait_drained()
    before = count_flow_runs(prefect_api, "open_input")
    with bounds_api.client() as client:
        big = {"blob": "x" * 1_000_000}
        response = client.post(SYNC, json={"workflow_id": "open_input", "input_data": big})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "input_too_large" and error["details"]["field"] == "input_data"
        assert f"{MAX_INPUT_BYTES // 1024} KiB" in error["message"]
        batch = client.post(BATCH, json={"workflow_id": "open_input", "inputs": [{}, big]})
        assert batch.status_code == 413 and batch.json()["error"]["details"]["field"] == "inputs[1]"
    assert count_flow_runs(prefect_api, "open_input") == before


def test_input_size_at_the_bound_is_accepted(bounds_api):
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    at_bound = {"blob": "x" * (MAX_INPUT_BYTES - overhead)}
    with bounds_api.client() as client:
        accepted = client.post(ASYNC, json={"workflow_id": "open_input", "input_data": at_bound})
        assert accepted.status_code == 202, accepted.text[:300]
        one_more = {"blob": at_bound["blob"] + "x"}
        assert client.post(ASYNC, json={"workflow_id": "open_input", "input_data": one_more}).status_code == 413


def test_webhook_body_over_its_bound_is_413(bounds_api):
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    with bounds_api.client() as client:
        at_bound = client.post(HOOK, json={"blob": "x" * (MAX_WEBHOOK_BYTES - overhead)})
        assert at_bound.status_code == 202, at_bound.text[:300]
        response = client.post(HOOK, json={"blob": "x" * (MAX_WEBHOOK_BYTES - overhead + 1)})
        assert response.status_code == 413 and response.json()["error"]["code"] == "input_too_large"


def test_invalid_utf8_is_malformed_json(bounds_api):
    with bounds_api.client() as client:
        for path, raw in (
            (SYNC, start_body('{"name": "\xff"}'.replace("\xff", "X")).replace(b"X", b"\xff")),
            (HOOK, b'{"name": "\xc3\x28"}'),
        ):
            response = post_raw(client, path, raw)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "malformed_json"
            assert "not UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('{"x": NaN}', "NaN is not JSON"),
        ('{"x": 1e999}', "too large for a 64-bit float"),
        ('{"x": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper than 64 levels"),
        ('{"blob": "' + "x" * MAX_INPUT_BYTES + '"}', "over the limit of 256 KiB"),
    ],
    ids=["nan", "overflow", "deep", "large"],
)
def test_cli_input_has_the_same_bounds(tmp_path, given, expected):
    env = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
    (tmp_path / "input.json").write_text(given)
    for arguments in (["--input", given], ["--input-file", str(tmp_path / "input.json")]):
        if len(given) > 100_000 and arguments[0] == "--input":
            continue  # over the OS's limit for one argument: the file form carries it
        done = run_cli("run", "open_input", *arguments, env=env, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr[-2000:]
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_cli_input_file_that_is_not_utf8(tmp_path):
    (tmp_path / "input.json").write_bytes(b'{"name": "\xff"}')
    env = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
    done = run_cli("run", "open_input", "--input-file", str(tmp_path / "input.json"), env=env, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "is not UTF-8 text (invalid byte at offset 10)" in done.stderr


def test_a_run_prefect_cannot_serialise_does_not_stop_listing(bounds_api, prefect_api):
    """A run stored before these bounds (or by anyone who can reach Prefect): Prefect stores
    it but answers 500 (it cannot encode it back), and then every filter page holding it
    answers 500. Listing reads around it."""
    direct = prefect(prefect_api)
    flow = direct.post("/flows/", json={"name": "bounds-unreadable"}).json()
    try:
        with prefect(prefect_api) as creating:  # Prefect answers 500 and drops the connection
            creating.post(
                "/flow_runs/",
                json={
                    "flow_id": flow["id"],
                    "name": "unreadable",
                    "parameters": {"input_data": nested(900)},
                    "tags": ["flowdeck", "workflow:open_input"],
                    "state": {"type": "COMPLETED", "name": "Completed"},
                },
            )
        with prefect(prefect_api) as reading:
            assert reading.post("/flow_runs/filter", json={"limit": 200}).status_code == 500
        with bounds_api.client() as client:
            started = client.post(SYNC, json={"workflow_id": "open_input", "input_data": {"a": 1}})
        assert started.status_code == 200, started.text
        listed = run_cli(
            "executions", "--json", "-n", "200", env={"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}, timeout=60
        )
    finally:
        direct.delete(f"/flows/{flow['id']}")
        direct.close()
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert started.json()["execution_id"] in listed.stdout


def test_healthz_keeps_answering_while_10_hostile_expressions_run(bounds_api):
    kinds = ["loop", "redos", "pad", "loop", "redos", "loop", "pad", "loop", "redos", "loop"]
    outcomes: list[dict[str, object]] = []

    def attack(kind: str) -> None:
        with bounds_api.client(timeout=120) as client:
            body = {"workflow_id": "hostile", "input_data": {"kind": kind, "s": "a" * 30 + "!"}}
            outcomes.append({"kind": kind, **client.post(SYNC, json=body).json()})

    # The claim is for a running API: the first success and failure of a fresh process import
    # and set up what they use (~0.4 s on the loop, once), so each kind runs once first.
    with bounds_api.client(timeout=120) as client:
        for kind in ("redos", "pad", "loop"):
            warm = client.post(SYNC, json={"workflow_id": "hostile", "input_data": {"kind": kind, "s": "a"}})
            assert warm.status_code == 200, warm.text
        # ... and its first drain of them to Prefect (the write-behind behind those answers).
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["outbox"]["executions"] and time.monotonic() < deadline:
            time.sleep(0.2)
    rounds: list[tuple[float, float, float, int]] = []  # (median, p99, max, probes) per round
    for _ in range(2):
        outcomes.clear()
        latencies = probe_healthz_while(bounds_api.url, [threading.Thread(target=attack, args=(k,)) for k in kinds])
        assert len(outcomes) == 10
        for outcome in outcomes:
            if outcome["kind"] == "redos":
                assert outcome["status"] == "success", outcome  # linear: no match, at once
            else:
                assert outcome["status"] == "failed", outcome
                assert "was stopped" in str(outcome["error"]), outcome
        assert len(latencies) >= 20
        p99 = statistics.quantiles(latencies, n=100)[98]
        rounds.append((statistics.median(latencies), p99, max(latencies), len(latencies)))
        print("healthz: {3} probes, median {0:.4f} s, p99 {1:.4f} s, max {2:.4f} s".format(*rounds[-1]))
        # On the old tree one ReDoS froze the loop for 24 s: no round may stall like that.
        assert max(latencies) < 2.5, f"/healthz stalled {max(latencies) * 1000:.0f} ms"
        if p99 < 0.1:
            break
    # The figure. The machine is shared: a round another job spoils is run once more.
    assert min(p99 for _, p99, _, _ in rounds) < 0.1, f"/healthz p99 over 100 ms in every round: {rounds}"


def probe_healthz_while(url: str, threads: list[threading.Thread]) -> list[float]:
    """/healthz latencies, one probe every 20 ms, while `threads` run."""
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=10) as probe:
        probe.get("/healthz")
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            started = time.perf_counter()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    for thread in threads:
        thread.join()
    return latencies
