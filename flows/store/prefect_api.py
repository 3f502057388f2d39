"""The few Prefect REST calls flowdeck makes on its hot paths, with retries that fit them.

Prefect's own client answers a 503 from a busy SQLite server (PrefectHQ/prefect#18934) with
a 2 s back-off; the lock clears within milliseconds, so flowdeck retries after 10-20 ms,
doubling up to 1 s, for up to 30 s. Payloads and answers are Prefect's own pydantic
schemas, so what is sent is exactly what Prefect's client would send.

Writes are gated: SQLite does them one at a time anyway, and a burst of 200 concurrent
writes only turns into 503s (measured: with 200 concurrent sync calls on 2 cores, 4 writes
in flight still lost calls, 2 lost none). Flow-run creates go first, since a caller waits
for them; state writes after an answer can wait. Reads pass freely.

    FLOWDECK_PREFECT_WRITES   writes in flight at once per process (default 2)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import Counter
from typing import Any
from uuid import UUID

import httpx
from prefect.client.schemas.objects import Deployment, Flow, FlowRun, State, TaskRun
from prefect.client.schemas.responses import OrchestrationResult
from prefect.states import to_state_create

from flowdeck import settings
from flowdeck.errors import PrefectUnavailable

_log = logging.getLogger("flowdeck.store")

RETRY_STATUSES = {429, 502, 503, 504}
BUSY_BUDGET_SECONDS = 30.0  # keep retrying a busy server this long
UNREACHABLE_BUDGET_SECONDS = 5.0  # a server that refuses connections this long is down


def _is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or path.rstrip("/").endswith(("/filter", "/count"))


def _is_create(method: str, path: str) -> bool:
    return method == "POST" and (path.rstrip("/") == "/flow_runs" or path.endswith("/create_flow_run"))


def request_kind(method: str, path: str) -> str:
    """What a request costs the server, as `PrefectAPI.counts` tallies it."""
    if _is_create(method, path):
        return "create"
    if path.endswith("/set_state"):
        return "state"
    if _is_read(method, path):
        return "read"
    if path.rstrip("/") in ("/events", "/logs"):
        return path.strip("/")
    if method == "PATCH":
        return "label"
    return "other"


UNAUTHORIZED_HINT = (
    "; the Prefect server wants a credential flowdeck did not send or it refused: set "
    "PREFECT_API_AUTH_STRING (the server flowdeck starts keeps its own in FLOWDECK_HOME/prefect_auth)"
)


def auth_headers() -> dict[str, str]:
    """The Authorization header Prefect's own client sends (PREFECT_API_KEY or
    PREFECT_API_AUTH_STRING), for every request flowdeck makes."""
    headers = {}
    api_key = os.environ.get("PREFECT_API_KEY")
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    auth_string = os.environ.get("PREFECT_API_AUTH_STRING")
    if auth_string:
        import base64

        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    return headers


def _api_url(api_url: str | None) -> str:
    url = (api_url or os.environ.get("PREFECT_API_URL") or "").rstrip("/")
    if not url:
        raise PrefectUnavailable("PREFECT_API_URL is not set")
    return url


def read_flow_run_blocking(flow_run_id: str, api_url: str | None = None) -> dict[str, Any] | None:
    """One flow run as JSON, read without an event loop (a Prefect entrypoint's module
    attribute is looked up synchronously); None when it cannot be read."""
    try:
        response = httpx.get(f"{_api_url(api_url)}/flow_runs/{flow_run_id}", headers=auth_headers(), timeout=10)
        data = response.json()
    except (httpx.HTTPError, ValueError, PrefectUnavailable):
        return None
    return data if isinstance(data, dict) else None


def _state_json(state: State[Any], flow_run_id: UUID | None = None) -> dict[str, Any]:
    state_create = to_state_create(state)
    if flow_run_id is not None:
        state_create.state_details.flow_run_id = flow_run_id
    return state_create.model_dump(mode="json", serialize_as_any=True)


class PrefectAPI:
    """An async client for one Prefect API; share one per process (connections are pooled)."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = _api_url(api_url)
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            headers=auth_headers(),
            timeout=httpx.Timeout(30.0, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._flow_ids: dict[str, UUID] = {}
        self._writes = asyncio.Semaphore(settings.prefect_writes())
        self._creates_waiting = 0
        self._no_creates = asyncio.Event()
        self._no_creates.set()
        # requests sent by kind (create, state, read, events, logs, label, other), retries
        # not counted: what an execution costs the server, read by bench/async.py
        self.counts: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PrefectAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        self.counts[request_kind(method, path)] += 1
        if _is_read(method, path):
            return await self._send(method, path, json, **kwargs)
        create = _is_create(method, path)
        if create:
            self._creates_waiting += 1
            self._no_creates.clear()
        else:
            while self._creates_waiting:
                await self._no_creates.wait()
        try:
            await self._writes.acquire()
        finally:
            if create:
                self._creates_waiting -= 1
                if not self._creates_waiting:
                    self._no_creates.set()
        try:
            return await self._send(method, path, json, **kwargs)
        finally:
            self._writes.release()

    async def _send(self, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = 0.01
        while True:
            elapsed = loop.time() - started
            try:
                response = await self._http.request(method, path, json=json, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if elapsed > UNREACHABLE_BUDGET_SECONDS:
                    raise PrefectUnavailable(
                        f"cannot reach the Prefect API at {self.api_url}: {exc}; "
                        "start it with `flowdeck server start` or set PREFECT_API_URL"
                    ) from None
            except httpx.TimeoutException:
                raise PrefectUnavailable(
                    f"the Prefect API at {self.api_url} did not answer {method} {path} in time"
                ) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400 and response.status_code not in (404, 409, 422):
                        hint = (
                            "; the Prefect server failed this request (its log says why: "
                            "FLOWDECK_HOME/server.log for a server flowdeck started)"
                            if response.status_code >= 500
                            else UNAUTHORIZED_HINT
                            if response.status_code == 401
                            else ""
                        )
                        raise PrefectUnavailable(
                            f"Prefect API {method} {path} answered {response.status_code}: {response.text[:300]}{hint}"
                        )
                    return response
                if elapsed > BUSY_BUDGET_SECONDS:
                    raise PrefectUnavailable(
                        f"Prefect API {method} {path} stayed busy ({response.status_code}) "
                        f"for {BUSY_BUDGET_SECONDS:.0f} s"
                    )
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)

    # flows -------------------------------------------------------------------------------
    async def flow_id(self, name: str) -> UUID:
        """The id of the Prefect flow called `name`, created on first use (cached)."""
        if name not in self._flow_ids:
            response = await self.request("POST", "/flows/", json={"name": name})
            self._flow_ids[name] = Flow.model_validate(response.json()).id
        return self._flow_ids[name]

    # flow runs ---------------------------------------------------------------------------
    async def create_flow_run(
        self,
        *,
        flow_name: str,
        name: str,
        parameters: dict[str, Any],
        state: State[Any],
        tags: list[str],
        context: dict[str, Any] | None = None,
        labels: dict[str, Any] | None = None,
        deployment_id: UUID | None = None,
        work_pool_name: str | None = None,
        idempotency_key: str | None = None,
        flow_version: str | None = None,
    ) -> FlowRun:
        body: dict[str, Any] = {
            "name": name,
            "parameters": parameters,
            "context": context or {},
            "tags": tags,
            "labels": labels or {},
            "state": _state_json(state),
        }
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        body["flow_id"] = str(await self.flow_id(flow_name))
        if flow_version:
            body["flow_version"] = flow_version
        if deployment_id is not None:
            # A deployment's run, made with the plain create: the deployment route hydrates
            # parameters (a caller's `{"__prefect_kind": "workspace_variable", ...}` would
            # become a Prefect variable's value, a `jinja` one rendered by the server) and
            # costs the server about twice as much (docs/benchmarks.md, session 6). flowdeck
            # has checked the input against the schema itself.
            body["deployment_id"] = str(deployment_id)
            body["work_pool_name"] = work_pool_name
        response = await self.request("POST", "/flow_runs/", json=body)
        if response.status_code == 404:
            raise PrefectUnavailable(f"Prefect has no deployment {deployment_id} or work pool; run `flowdeck deploy`")
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused the flow run: {response.text[:500]}")
        return FlowRun.model_validate(response.json())

    async def read_flow_run(self, flow_run_id: UUID) -> FlowRun | None:
        response = await self.request("GET", f"/flow_runs/{flow_run_id}")
        if response.status_code == 404:
            return None
        return FlowRun.model_validate(response.json())

    async def read_flow_runs(self, body: dict[str, Any]) -> list[FlowRun]:
        """One page of flow runs. A page Prefect fails to serialise (it once stored a run whose
        parameters it cannot encode, and then every filter answered 500) is narrowed by
        halves until only the unreadable runs are left out, each logged: one bad run never
        stops recovery or listing of the others."""
        try:
            return await self._read_flow_runs_page(body)
        except PrefectUnavailable as error:
            if not _is_server_error(error):
                raise
        return await self._read_flow_runs_narrowing(body, int(body.get("offset") or 0), int(body.get("limit") or 200))

    async def _read_flow_runs_page(self, body: dict[str, Any]) -> list[FlowRun]:
        response = await self.request("POST", "/flow_runs/filter", json=body)
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused a flow-run query: {response.text[:300]}")
        return [FlowRun.model_validate(item) for item in response.json()]

    async def _read_flow_runs_narrowing(self, body: dict[str, Any], offset: int, limit: int) -> list[FlowRun]:
        try:
            return await self._read_flow_runs_page({**body, "offset": offset, "limit": limit})
        except PrefectUnavailable as error:
            if not _is_server_error(error):
                raise
            if limit <= 1:
                _log.warning("skipped flow run %d of a query: Prefect cannot serialise it (%s)", offset, error.message)
                return []
        half = limit // 2
        first = await self._read_flow_runs_narrowing(body, offset, half)
        if len(first) < half:
            return first
        return first + await self._read_flow_runs_narrowing(body, offset + half, limit - half)

    async def set_flow_run_state(
        self, flow_run_id: UUID, state: State[Any], *, force: bool = False
    ) -> OrchestrationResult[Any]:
        body = {"state": _state_json(state, flow_run_id), "force": force}
        response = await self.request("POST", f"/flow_runs/{flow_run_id}/set_state", json=body)
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused the state change of {flow_run_id}: {response.text[:300]}")
        return OrchestrationResult.model_validate(response.json())

    async def update_flow_run_labels(self, flow_run_id: UUID, labels: dict[str, Any]) -> None:
        await self.request("PATCH", f"/flow_runs/{flow_run_id}/labels", json=labels)

    async def update_flow_run_tags(self, flow_run_id: UUID, tags: list[str]) -> None:
        await self.request("PATCH", f"/flow_runs/{flow_run_id}", json={"tags": tags})

    # task runs ---------------------------------------------------------------------------
    async def read_task_runs(self, flow_run_id: UUID, limit: int = 200) -> list[TaskRun]:
        return await self.read_task_runs_of([flow_run_id], limit)

    async def read_task_runs_of(
        self, flow_run_ids: list[UUID], limit: int = 200, *, strict: bool = True
    ) -> list[TaskRun]:
        """The task runs of these flow runs, oldest first (not `strict`: [] when Prefect
        refuses the query)."""
        body = {
            "flow_runs": {"id": {"any_": [str(i) for i in flow_run_ids]}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": limit,
        }
        response = await self.request("POST", "/task_runs/filter", json=body)
        if response.status_code != 200 and not strict:
            return []
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused a task-run query: {response.text[:300]}")
        return [TaskRun.model_validate(item) for item in response.json()]

    # logs --------------------------------------------------------------------------------
    async def read_logs(self, log_filter: dict[str, Any], limit: int = 200) -> list[dict[str, Any]]:
        """Log lines as JSON, oldest first ([] when Prefect refuses the query)."""
        response = await self.request(
            "POST", "/logs/filter", json={"logs": log_filter, "sort": "TIMESTAMP_ASC", "limit": limit}
        )
        if response.status_code != 200:
            return []
        lines: list[dict[str, Any]] = response.json()
        return lines

    # work pools and workers --------------------------------------------------------------
    async def ensure_work_pool(self, name: str, description: str) -> None:
        """Create the process work pool `name` unless it exists."""
        response = await self.request("GET", f"/work_pools/{name}")
        if response.status_code == 404:
            await self.request(
                "POST", "/work_pools/", json={"name": name, "type": "process", "description": description}
            )

    async def heartbeat_worker(self, work_pool: str, name: str, interval_seconds: int) -> None:
        await self.request(
            "POST",
            f"/work_pools/{work_pool}/workers/heartbeat",
            json={"name": name, "heartbeat_interval_seconds": interval_seconds},
        )

    async def read_workers(self, work_pool: str, limit: int = 200) -> list[dict[str, Any]]:
        """The workers of a work pool as JSON (name, last_heartbeat_time, ...)."""
        response = await self.request("POST", f"/work_pools/{work_pool}/workers/filter", json={"limit": limit})
        workers: list[dict[str, Any]] = response.json()
        return workers

    # deployments -------------------------------------------------------------------------
    async def create_deployment(self, body: dict[str, Any], what: str) -> UUID:
        """Create or update a deployment (Prefect upserts by flow and name)."""
        response = await self.request("POST", "/deployments/", json=body)
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused the deployment of {what}: {response.text[:300]}")
        return UUID(response.json()["id"])

    async def read_deployment_by_name(self, flow_name: str, deployment_name: str) -> Deployment | None:
        response = await self.request("GET", f"/deployments/name/{flow_name}/{deployment_name}")
        if response.status_code == 404:
            return None
        return Deployment.model_validate(response.json())

    # events and logs, written behind by the outbox drain -------------------------------
    async def create_events(self, events: list[dict[str, Any]]) -> None:
        """Events in one request (the server's task-run recorder makes task runs of them;
        an event id already recorded is ignored, so a replay writes nothing twice)."""
        response = await self.request("POST", "/events", json=events)
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused {len(events)} events: {response.text[:300]}")

    async def create_logs(self, logs: list[dict[str, Any]]) -> None:
        response = await self.request("POST", "/logs/", json=logs)
        if response.status_code >= 400:
            raise PrefectUnavailable(f"Prefect refused {len(logs)} log lines: {response.text[:300]}")

    async def health(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _is_server_error(error: PrefectUnavailable) -> bool:
    """Prefect answered 500 (it failed the request), not: it cannot be reached."""
    return " answered 500" in error.message
