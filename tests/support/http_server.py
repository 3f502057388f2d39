"""A real HTTP server on 127.0.0.1 for http steps to call, recording what it was sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordingServer"]


class RecordingServer:
    """A real HTTP server on 127.0.0.1 that answers from a routing table and records calls.

    Routes map "METHOD /path" to (status, json_body) or a callable(request) -> (status, body).
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.routes: dict[str, Any] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                from urllib.parse import parse_qs, urlparse

                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode()
                request = {
                    "method": self.command,
                    "path": parsed.path,
                    "query": {k: v[0] for k, v in parse_qs(parsed.query).items()},
                    "headers": dict(self.headers),
                    "body": body,
                }
                with server.lock:
                    server.calls.append(request)
                route = server.routes.get(f"{self.command} {parsed.path}")
                if route is None:
                    status, answer = 404, {"error": "no route"}
                elif callable(route):
                    status, answer = route(request)
                else:
                    status, answer = route
                payload = json.dumps(answer).encode() if not isinstance(answer, str) else answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(answer, str) else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c["method"] == method and c["path"] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
