"""The suite's Prefect server as flowdeck's own processes reach it: with its credential.

The server flowdeck starts asks every request for `PREFECT_API_AUTH_STRING` (set in this
process by `prefect_server.base_environment()`, which tests/conftest.py runs); a test that
talks to Prefect directly sends it too, and an attack test leaves it out on purpose.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx

__all__ = ["auth_headers", "client"]


def auth_headers() -> dict[str, str]:
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def client(prefect_api: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Client:
    """An HTTP client for the Prefect API (`authenticated=False`: as any other local process)."""
    headers = auth_headers() if authenticated else {}
    return httpx.Client(base_url=prefect_api, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)
