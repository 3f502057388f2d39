"""The HTTP step against a real server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from flowdeck.errors import StepError
from flowdeck.runtime.steps import http as http_step
from flowdeck.runtime.steps.http import run_http


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else ""
        if parts.path == "/echo":
            echo = {
                "method": self.command,
                "query": parse_qs(parts.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": received,
            }
            self._send(200, json.dumps(echo).encode(), "application/json")
        elif parts.path == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif parts.path == "/not-found":
            self._send(404, b'{"error": "no such contact"}', "application/json")
        elif parts.path == "/empty":
            self._send(204, b"", "application/json")
        elif parts.path == "/broken-json":
            self._send(200, b"{not json", "application/json")
        elif parts.path == "/deep-json":
            self._send(200, b"[" * 100_000 + b"]" * 100_000, "application/json")
        elif parts.path == "/slow":
            time.sleep(5.0)
            self._send(200, b"late", "text/plain")
        elif parts.path == "/huge":
            self._send(200, b"x" * (http_step.MAX_RESPONSE_BYTES + 1), "text/plain")
        else:
            self._send(500, b"unexpected path", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that hang up early are expected
        pass


@pytest.fixture(scope="module")
def server():
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(**kwargs):
    async def go():
        async with httpx.AsyncClient() as client:
            return await run_http(client=client, **kwargs)

    return asyncio.run(go())


def test_a_json_body_is_sent_as_json_and_a_json_response_is_parsed(server):
    result = call(
        method="post",
        url=f"{server}/echo",
        headers={"X-Trace": "t1", "X-Count": 3, "X-Skip": None},
        query={"q": "a b", "n": 2, "flag": True, "many": [1, 2]},
        body={"name": "Ann", "tags": ["x"]},
    )
    assert result["status_code"] == 200
    assert result["headers"]["content-type"] == "application/json"
    echo = result["body"]
    assert echo["method"] == "POST"
    assert echo["query"] == {"q": ["a b"], "n": ["2"], "flag": ["true"], "many": ["1", "2"]}
    assert echo["headers"]["x-trace"] == "t1" and echo["headers"]["x-count"] == "3"
    assert "x-skip" not in echo["headers"]
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {"name": "Ann", "tags": ["x"]}


def test_a_string_body_is_sent_as_text(server):
    echo = call(method="PUT", url=f"{server}/echo", body="hello there")["body"]
    assert echo["body"] == "hello there"
    assert echo["headers"]["content-type"].startswith("text/plain")


def test_a_text_response_stays_text(server):
    assert call(method="GET", url=f"{server}/text")["body"] == "plain words"


def test_an_empty_response_has_no_body(server):
    result = call(method="DELETE", url=f"{server}/empty")
    assert result["status_code"] == 204 and result["body"] is None


def test_a_response_that_claims_json_but_is_not_gives_text(server):
    assert call(method="GET", url=f"{server}/broken-json")["body"] == "{not json"


def test_a_response_nested_past_the_input_depth_fails_the_step_clearly(server):
    """A server cannot put into the execution's record what Prefect could not read back."""
    with pytest.raises(StepError) as caught:
        call(method="GET", url=f"{server}/deep-json")
    assert f"HTTP GET {server}/deep-json: the response body nests deeper than 64 levels" in str(caught.value)


def test_a_failing_status_names_status_method_and_url_but_no_secrets(server):
    with pytest.raises(StepError) as caught:
        call(
            method="GET",
            url=f"{server}/not-found?api_key=SECRET-IN-QUERY",
            headers={"Authorization": "Bearer SECRET-IN-HEADER"},
        )
    message = str(caught.value)
    assert "404" in message and f"GET {server}/not-found" in message
    assert "no such contact" in message
    assert "SECRET" not in message
    assert caught.value.details["status_code"] == 404


def test_a_failing_status_is_output_when_fail_on_status_is_off(server):
    result = call(method="GET", url=f"{server}/not-found", fail_on_status=False)
    assert result["status_code"] == 404 and result["body"] == {"error": "no such contact"}


def test_a_timeout_is_a_step_error(server):
    started = time.perf_counter()
    with pytest.raises(StepError, match=r"GET .*/slow timed out after 0.2 s"):
        call(method="GET", url=f"{server}/slow", timeout=0.2)
    assert time.perf_counter() - started < 3.0  # well before the slow answer


def test_a_refused_connection_is_a_step_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StepError, match="could not connect"):
        call(method="GET", url=f"http://127.0.0.1:{port}/x")


@pytest.mark.parametrize("url", ["", None, "not a url", "ftp://example.com/x", "http://"])
def test_a_bad_url_is_a_step_error(url):
    with pytest.raises(StepError, match="url"):
        call(method="GET", url=url)


def test_a_response_too_large_is_refused(server):
    with pytest.raises(StepError, match="bytes"):
        call(method="GET", url=f"{server}/huge")


def test_headers_must_be_a_mapping(server):
    with pytest.raises(StepError, match="headers must be a mapping"):
        call(method="GET", url=f"{server}/echo", headers=["x"])


def test_an_http_step_runs_in_plain_python_mode_without_a_client(server, tmp_path):
    """`Run` without `http=` (the interpreter alone, no engine): the step gets a client of
    its own instead of crashing with AttributeError on None."""
    from flowdeck.definition.catalog import load_catalog
    from flowdeck.runtime.interpreter import Run

    (tmp_path / "plain.yaml").write_text(
        "id: plain\nversion: 1\nstatus: live\nsteps:\n"
        f'  - id: fetch\n    type: http\n    url: "{server}/echo"\n'
        '  - id: done\n    type: output\n    fields:\n      method: "{{ fetch.body.method }}"\n'
    )
    catalog = load_catalog(tmp_path)
    assert not catalog.has_errors, catalog.problems
    definition = catalog.resolve("plain", "latest", allow_draft=False)
    outcome = asyncio.run(Run(definition=definition, execution_id="exec_plain", mode="sync", input={}).execute())
    assert outcome.status == "success", outcome.error
    assert outcome.output == {"method": "GET"}
