"""The schemas as an editor sees them: the real yaml-language-server, driven over LSP.

One server process for the module, spoken to over stdio JSON-RPC. The definitions it opens
are written into a temporary directory next to a copy of `schemas/`, so the documents'
`# yaml-language-server: $schema=...` modelines resolve exactly as in the repository, and
nothing here depends on what `definitions/` holds today.

The server is an npm package installed once into a cache directory
(`$FLOWDECK_TEST_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/flowdeck-test`) and reused; the tests skip
only when `node` or `npm` is not installed.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
YAML_LANGUAGE_SERVER = "1.25.0"  # 2.x needs Node >= 22.13; this machine has Node 20
CACHE = Path(
    os.environ.get("FLOWDECK_TEST_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowdeck-test"
)
TIMEOUT = 60.0

MODELINE = "# yaml-language-server: $schema=../schemas/workflow.schema.json\n"
TEST_MODELINE = "# yaml-language-server: $schema=../schemas/workflow-test.schema.json\n"

VALID = (
    MODELINE
    + """\
id: lookup_contact
name: Lookup contact
version: 1
status: live
sync_timeout: 10s
input:
  type: object
  required: [customer_email]
  properties: {customer_email: {type: string, format: email}}
triggers:
  - {type: schedule, cron: "0 9 * * 1-5", timezone: Europe/Paris, input: {customer_email: a@example.com}}
retries: {max_retries: 2, delay: 5s, backoff: 2}
steps:
  - id: search
    name: Search CRM
    type: http
    url: "https://crm.example.com/api/contacts"
    query: {email: "{{ input.customer_email }}"}
    timeout: 5s
  - id: score
    type: code
    code: |
      def run(ctx):
          return {"points": 1}
  - id: check_match
    type: condition
    branches:
      - name: found
        when: "$count(search.body.contacts) > 0"
        steps:
          - {id: contact, type: output, fields: {contact_id: "{{ search.body.contacts[0].id }}"}}
    default:
      - {id: pause, type: wait, duration: {value: 2, unit: seconds}}
      - {id: why, type: note, text: nobody}
      - {id: notify, type: action, uses: "my_company.slack:post", with: {text: hi}}
      - {id: again, type: workflow, workflow_id: hello, version: latest, input: {}}
      - {id: no_contact, type: fail, message: "no contact for {{ input.customer_email }}"}
"""
)

# Line numbers below are 0-based, as in LSP; the modeline is line 0.
BROKEN = (
    MODELINE
    + """\
id: broken_http
version: 1
steps:
  - id: fetch
    type: http
    mehtod: POST
    timeout: 5 minutes
  - id: later
    type: wiat
"""
)

VALID_TEST = (
    TEST_MODELINE + (ROOT / "tests" / "fixtures_tests" / "lookup_contact.test.yaml").read_text().split("\n", 1)[1]
)

# The cursor goes on the last line, in the http step's mapping.
COMPLETE = (
    MODELINE
    + """\
id: complete
version: 1
steps:
  - id: fetch
    type: http
    url: "https://example.com"
    """
)

BROKEN_TEST = (
    TEST_MODELINE
    + """\
workflow: lookup_contact
cases:
  - name: known contact
    mocks:
      search: {output: {}, error: CRM down}
    expect:
      status: passed
"""
)


# --------------------------------------------------------------------------- the server


def _server_script() -> Path:
    """The installed server's entry point, installing the pinned version on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("yaml-language-server needs Node.js: `node` and `npm` are not on PATH")
    prefix = CACHE / f"yaml-language-server-{YAML_LANGUAGE_SERVER}"
    script = prefix / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    if not script.exists():
        # Install beside the final place, then rename: a half-done install is never reused,
        # and two test runs installing at once both end up with a complete one.
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(prefix, ignore_errors=True)  # an install interrupted some other way
        staging = Path(tempfile.mkdtemp(prefix=f"{prefix.name}.", dir=CACHE))
        result = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(staging),
                "--save-exact",
                "--no-audit",
                "--no-fund",
                "--loglevel",
                "error",
                f"yaml-language-server@{YAML_LANGUAGE_SERVER}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (
            f"npm install yaml-language-server@{YAML_LANGUAGE_SERVER} failed:\n{result.stdout}{result.stderr}"
        )
        try:
            staging.rename(prefix)
        except OSError:  # another run finished first
            shutil.rmtree(staging, ignore_errors=True)
        assert script.exists(), script
    return script


class LanguageServer:
    """A minimal LSP client over stdio: requests, notifications, and what the server pushes."""

    def __init__(self, script: Path, root: Path):
        self.process = subprocess.Popen(
            ["node", str(script), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
        )
        self.next_id = 0
        self.opened: set[str] = set()
        self.responses: dict[int, queue.Queue] = {}
        self.diagnostics: dict[str, list[list[dict]]] = {}
        self.changed = threading.Condition()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    # wire format ----------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            self._dispatch(json.loads(stream.read(length)))

    def _dispatch(self, message: dict) -> None:
        if "method" in message and "id" in message:  # a request from the server
            result: Any = None
            if message["method"] == "workspace/configuration":
                result = [SETTINGS.get(item.get("section"), None) for item in message["params"]["items"]]
            self._send({"id": message["id"], "result": result})
        elif "method" in message:
            if message["method"] == "textDocument/publishDiagnostics":
                with self.changed:
                    params = message["params"]
                    self.diagnostics.setdefault(params["uri"], []).append(params["diagnostics"])
                    self.changed.notify_all()
        else:
            self.responses.setdefault(message["id"], queue.Queue()).put(message)

    # API ------------------------------------------------------------------------------

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        ident = self.next_id
        waiting = self.responses.setdefault(ident, queue.Queue())
        self._send({"id": ident, "method": method, "params": params})
        try:
            reply = waiting.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no answer to {method} in {TIMEOUT}s; stderr: {self._stderr()}") from None
        assert "error" not in reply, reply
        return reply["result"]

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def open(self, path: Path) -> str:
        """Opens the document once (an LSP client must not open it twice); its URI."""
        uri = path.as_uri()
        if uri in self.opened:
            return uri
        self.opened.add(uri)
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "yaml",
                    "version": 1,
                    "text": path.read_text(),
                }
            },
        )
        return uri

    def diagnostics_of(self, uri: str) -> list[dict]:
        """The first diagnostics published for the document (one publish per version)."""
        deadline = time.monotonic() + TIMEOUT
        with self.changed:
            while not self.diagnostics.get(uri):
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no diagnostics for {uri} in {TIMEOUT}s; stderr: {self._stderr()}")
                self.changed.wait(left)
            return self.diagnostics[uri][0]

    def hover(self, uri: str, line: int, character: int) -> str:
        result = self.request(
            "textDocument/hover",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
            },
        )
        assert result, f"no hover at {line}:{character}"
        contents = result["contents"]
        return contents["value"] if isinstance(contents, dict) else str(contents)

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=10)

    def _stderr(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")[-2000:]


SETTINGS: dict[str, Any] = {
    "yaml": {
        "validate": True,
        "hover": True,
        "completion": True,
        "schemas": {},  # only the modelines say which schema applies
        "schemaStore": {"enable": False},  # no network
        "format": {"enable": False},
    },
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lsp")
    shutil.copytree(ROOT / "schemas", root / "schemas", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / "definitions").mkdir()
    for name, text in {
        "valid.yaml": VALID,
        "broken.yaml": BROKEN,
        "valid.test.yaml": VALID_TEST,
        "broken.test.yaml": BROKEN_TEST,
        "complete.yaml": COMPLETE,
    }.items():
        (root / "definitions" / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def server(workspace):
    script = _server_script()
    client = LanguageServer(script, workspace)
    client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": "flowdeck"}],
            "capabilities": {
                "textDocument": {
                    "hover": {"contentFormat": ["markdown", "plaintext"]},
                    "completion": {
                        "completionItem": {"documentationFormat": ["markdown", "plaintext"], "snippetSupport": True}
                    },
                    "publishDiagnostics": {"relatedInformation": True},
                    "synchronization": {"didSave": True},
                },
                "workspace": {"configuration": True, "workspaceFolders": True},
            },
            "initializationOptions": {},
        },
    )
    client.notify("initialized", {})
    client.notify("workspace/didChangeConfiguration", {"settings": SETTINGS})
    yield client
    client.close()


def _summary(diagnostics: list[dict]) -> list[tuple[int, int, int, int, str]]:
    return sorted(
        (
            d["range"]["start"]["line"],
            d["range"]["start"]["character"],
            d["range"]["end"]["line"],
            d["range"]["end"]["character"],
            d["message"],
        )
        for d in diagnostics
    )


def _at(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """(line, character) of a needle in a document, 0-based as in LSP."""
    offset = -1
    for _ in range(occurrence + 1):
        offset = text.index(needle, offset + 1)
    before = text[:offset]
    return before.count("\n"), offset - (before.rfind("\n") + 1)


def _diagnostic(text: str, needle: str, message: str, length: int | None = None) -> tuple:
    line, character = _at(text, needle)
    return (line, character, line, character + (len(needle) if length is None else length), message)


def _open(server, workspace: Path, name: str) -> str:
    return server.open(workspace / "definitions" / name)


def test_a_valid_definition_has_no_diagnostics(server, workspace):
    assert _summary(server.diagnostics_of(_open(server, workspace, "valid.yaml"))) == []


def test_a_broken_definition_has_diagnostics_where_the_mistakes_are(server, workspace):
    got = _summary(server.diagnostics_of(_open(server, workspace, "broken.yaml")))
    assert got == sorted(
        [
            # a missing key: on the step mapping's first key
            _diagnostic(BROKEN, "id: fetch", 'Missing property "url".', length=1),
            # a misspelt key: on the key
            _diagnostic(BROKEN, "mehtod", "Property mehtod is not allowed."),
            # a bad duration: the schema's patternErrorMessage, on the value
            _diagnostic(
                BROKEN, "5 minutes", "expected a duration such as 500ms, 90s, 15m, 2h, 1d, or a whole number of seconds"
            ),
            # an unknown step type: the enum, on the value
            _diagnostic(
                BROKEN,
                "wiat",
                'Value is not accepted. Valid values: "http", "code", "condition", "wait", '
                '"output", "fail", "note", "action", "workflow".',
            ),
        ]
    ), got


def test_hover_on_a_step_type_teaches_the_step_types(server, workspace):
    uri = _open(server, workspace, "valid.yaml")
    server.diagnostics_of(uri)
    line, character = _at(VALID, "type: http")
    for position in (character + 1, character + len("type: h")):  # on the key, on the value
        text = server.hover(uri, line, position)
        assert "The **step type**, which selects the step's other keys" in text, text
        assert "`http`: Sends an HTTP request; output `{status_code, headers, body}`." in text, text
        assert "`workflow`: Runs another workflow inline" in text, text


def test_hover_on_a_step_key_shows_that_step_types_help(server, workspace):
    """The if/then type switch resolves: an http step's `timeout` is the http one."""
    uri = _open(server, workspace, "valid.yaml")
    server.diagnostics_of(uri)
    line, character = _at(VALID, "timeout: 5s")
    text = server.hover(uri, line, character + 1)
    assert "How long to wait for the answer" in text and "Default: `30s`" in text, text
    line, character = _at(VALID, "code: |")
    text = server.hover(uri, line, character + 1)
    assert "Python source defining `def run(ctx):`" in text, text


def test_a_valid_test_file_has_no_diagnostics(server, workspace):
    uri = _open(server, workspace, "valid.test.yaml")
    assert _summary(server.diagnostics_of(uri)) == []
    line, character = _at(VALID_TEST, "output_includes")
    text = server.hover(uri, line, character + 1)
    assert "A **subset** of the output" in text, text


def test_a_broken_test_file_has_diagnostics(server, workspace):
    got = _summary(server.diagnostics_of(_open(server, workspace, "broken.test.yaml")))
    assert got == sorted(
        [
            _diagnostic(BROKEN_TEST, "error", "Property error is not allowed."),
            _diagnostic(BROKEN_TEST, "passed", 'Value is not accepted. Valid values: "success", "failed".'),
        ]
    ), got


def test_completion_in_an_http_step_offers_its_keys_with_their_help(server, workspace):
    uri = _open(server, workspace, "complete.yaml")
    server.diagnostics_of(uri)
    lines = COMPLETE.split("\n")
    result = server.request(
        "textDocument/completion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": len(lines) - 1, "character": len(lines[-1])},
        },
    )
    items = {item["label"]: item for item in (result["items"] if isinstance(result, dict) else result)}
    assert {"method", "headers", "query", "body", "timeout", "fail_on_status", "name"} <= set(items), sorted(items)
    assert "code" not in items and "url" not in items  # another step type's key; a key already there
    method = items["method"]
    if "documentation" not in method:
        method = server.request("completionItem/resolve", method)
    documentation = method["documentation"]
    text = documentation["value"] if isinstance(documentation, dict) else documentation
    assert "The HTTP method, upper case. Default: `GET`." in text, text
