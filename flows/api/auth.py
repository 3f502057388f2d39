"""Bearer tokens: where they come from and how a request is checked.

Tokens are read once at start-up from `FLOWDECK_API_TOKENS` (comma-separated) and from the
token file `$FLOWDECK_HOME/api_tokens` (one token a line, `#` starts a comment); both
sources add up. With none configured the API refuses to start unless it is explicitly
started for local development (`flowdeck api --insecure-dev`).

The check runs as ASGI middleware, before routing and before the body is read, so a
request without a valid token learns nothing: not whether a path, a workflow or an
execution exists, not whether its body was valid. Every configured token is compared
with `hmac.compare_digest` (constant time, and no early exit across tokens).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from flowdeck import settings
from flowdeck.api.errors import error_response
from flowdeck.errors import FlowdeckError

TOKENS_ENV = settings.API_TOKENS_VARIABLE
TOKEN_FILE_NAME = "api_tokens"
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class NoTokens(FlowdeckError):
    """`flowdeck api` with no token configured (and no --insecure-dev)."""

    code = "no_api_tokens"
    exit_code = 2


def token_file() -> Path:
    return settings.home() / TOKEN_FILE_NAME


def load_tokens() -> list[str]:
    """Every configured token (environment and token file), without blanks or duplicates."""
    found: list[str] = []
    found += settings.api_tokens()
    path = token_file()
    if path.is_file():
        for line in path.read_text().splitlines():
            found.append(line.split("#", 1)[0].strip())
    return list(dict.fromkeys(token for token in found if token))


def require_tokens(tokens: list[str], insecure_dev: bool) -> None:
    if not tokens and not insecure_dev:
        raise NoTokens(
            f"no API token configured: set {TOKENS_ENV}=<token>[,<token>...] or write one token "
            f"a line to {token_file()}; for local development only, start with --insecure-dev"
        )


def token_matches(presented: str, tokens: Iterable[str]) -> bool:
    given = presented.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.encode())
    return matched


def bearer_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class BearerAuth:
    """ASGI middleware: 401 for every non-public path without a valid bearer token."""

    def __init__(self, app: ASGIApp, tokens: list[str], enabled: bool = True) -> None:
        self.app = app
        self.tokens = list(tokens)
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        presented = bearer_of(scope)
        if presented is not None and token_matches(presented, self.tokens):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            "unauthorized",
            "missing or invalid bearer token; send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


__all__ = ["BearerAuth", "NoTokens", "TOKENS_ENV", "load_tokens", "require_tokens", "token_file", "token_matches"]
