"""The HTTP step: one request, its response as JSON output, failures as StepError.

The engine renders the templates and owns the client (connection pooling across steps);
this module only turns values into a request and a response (or an error) into the
step's output. Messages name the method and the URL without its query string or
credentials, and never repeat request headers: those are where secrets live.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from flowdeck.definition.model import DEFAULT_HTTP_TIMEOUT
from flowdeck.errors import StepError
from flowdeck.runtime.input_bounds import JsonRefused, parse_strict

MAX_RESPONSE_BYTES = 10 * 1024 * 1024  # a response is kept in the context: keep it bounded
_ERROR_BODY_CHARS = 200


async def run_http(
    *,
    method: str,
    url: Any,
    client: httpx.AsyncClient,
    headers: Any = None,
    query: Any = None,
    body: Any = None,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    fail_on_status: bool = True,
) -> dict[str, Any]:
    """Send one request; return {"status_code", "headers", "body"}.

    `body`: dict, list, number or boolean is sent as JSON, a string as text, None as no
    body. The response body is parsed when it is JSON, else returned as text (None when
    empty). A non-2xx status fails the step when `fail_on_status`.
    """
    method = str(method or "GET").upper()
    target = _request_url(url, method)
    where = f"{method} {_safe_url(target)}"
    request_headers = _string_map(headers, "headers", where)
    content, json_body = _request_body(body, request_headers)
    try:
        async with client.stream(
            method,
            target,
            headers=request_headers,
            params=_query_params(query, where),
            content=content,
            json=json_body,
            timeout=httpx.Timeout(timeout),
        ) as response:
            raw = await _read_bounded(response, where)
    except httpx.TimeoutException:
        raise StepError(f"HTTP {where} timed out after {timeout:g} s") from None
    except httpx.ConnectError as error:
        raise StepError(f"HTTP {where} could not connect: {_reason(error)}") from None
    except httpx.HTTPError as error:
        raise StepError(f"HTTP {where} failed: {_reason(error)}") from None
    except (httpx.InvalidURL, ValueError, TypeError) as error:
        raise StepError(f"HTTP {where} could not be sent: {_reason(error)}") from None

    output = {
        "status_code": response.status_code,
        "headers": dict(response.headers.items()),
        "body": _response_body(response, raw, where),
    }
    if fail_on_status and not response.is_success:
        raise StepError(
            f"HTTP {where} returned {response.status_code} {response.reason_phrase}".rstrip()
            + _body_excerpt(output["body"]),
            details=output,
        )
    return output


def _request_url(url: Any, method: str) -> httpx.URL:
    if not isinstance(url, str) or not url.strip():
        raise StepError(f"HTTP {method}: the url is {url!r}; it must render to an http(s) URL")
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as error:
        raise StepError(f"HTTP {method}: the url {url!r} is not a valid URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise StepError(f"HTTP {method} {_safe_url(parsed)}: the url must start with http:// or https://")
    return parsed


def _safe_url(url: httpx.URL) -> str:
    """scheme://host[:port]/path: no credentials, no query (API keys often sit there)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _string_map(value: Any, what: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StepError(f"HTTP {where}: {what} must be a mapping of names to values, got {type(value).__name__}")
    return {str(key): _scalar_text(item) for key, item in value.items() if item is not None}


def _query_params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StepError(f"HTTP {where}: query must be a mapping of names to values, got {type(value).__name__}")
    params: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, list):
            params[str(key)] = [_scalar_text(element) for element in item if element is not None]
        else:
            params[str(key)] = _scalar_text(item)
    return params


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _request_body(body: Any, headers: dict[str, str]) -> tuple[str | None, Any]:
    """(text content, JSON value): exactly one of them is used by httpx."""
    if body is None:
        return None, None
    if isinstance(body, str):
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return body, None
    return None, body


async def _read_bounded(response: httpx.Response, where: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise StepError(
            f"HTTP {where}: the response is {int(declared):,} bytes, more than the {MAX_RESPONSE_BYTES:,} allowed"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise StepError(f"HTTP {where}: the response is more than the {MAX_RESPONSE_BYTES:,} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def _response_body(response: httpx.Response, raw: bytes, where: str) -> Any:
    if not raw:
        return None
    content_type = response.headers.get("content-type", "").lower()
    try:
        text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    if "json" in content_type:
        # The body joins the execution's context and its records in Prefect: the same strict
        # JSON and depth as an input, so no server can store what Prefect cannot read back.
        try:
            return parse_strict(text, "the response body")
        except JsonRefused as refused:
            if refused.malformed:
                return text  # says JSON, is not: the text is more useful than an error
            raise StepError(f"HTTP {where}: {refused}") from None
    return text


def _body_excerpt(body: Any) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    text = " ".join(text.split())
    if len(text) > _ERROR_BODY_CHARS:
        text = text[: _ERROR_BODY_CHARS - 3] + "..."
    return f": {text}"


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__
