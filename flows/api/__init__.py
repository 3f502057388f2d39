"""flowdeck's HTTP API: the documented sync/async execution endpoints, webhooks, agent tools.

    app.py         create_app(): middleware order, routers, /healthz
    health.py      what /healthz says of Prefect, without waiting on a busy one
    auth.py        bearer tokens (FLOWDECK_API_TOKENS, $FLOWDECK_HOME/api_tokens)
    limits.py      body size limits (413)
    errors.py      the JSON error envelope and the status of every error
    models.py      request/response models (what /openapi.json says)
    executions.py  sync, async, batch, status, cancel
    workflows.py   catalog and agent-tool endpoints
    hooks.py       webhooks

Importing this package does not import prefect; the engine is opened when the app starts.
"""

from flowdeck.api.app import create_app

__all__ = ["create_app"]
