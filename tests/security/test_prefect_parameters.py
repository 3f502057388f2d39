"""An execution runs the input its caller sent, verbatim (found in session 6).

Prefect's `create_flow_run` for a deployment hydrates the parameters it is given: a value
`{"__prefect_kind": "workspace_variable", ...}` becomes the value of that Prefect variable,
and `{"__prefect_kind": "jinja", ...}` is rendered by the server. flowdeck created its runs
that way, so any caller of the API (or of a webhook) could read the Prefect variables a
team keeps there (tokens, say) by asking a workflow to echo its input. Runs are now made
with the plain flow-run create, which stores parameters as sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support.cli import run_cli
from support.prefect import client

DEFINITIONS = Path(__file__).parent / "prefect_definitions"
ENV = {"FLOWDECK_DEFINITIONS": str(DEFINITIONS)}
SECRET = "s3cr3t-from-a-prefect-variable"


def test_hydration_markers_in_an_input_reach_the_workflow_as_sent(prefect_api: str, start_worker: Any) -> None:
    start_worker(DEFINITIONS)
    with client(prefect_api) as prefect:
        prefect.delete("/variables/name/crm_token")
        created = prefect.post("/variables/", json={"name": "crm_token", "value": SECRET})
        assert created.status_code == 201, created.text
    note = {
        "token": {"__prefect_kind": "workspace_variable", "variable_name": "crm_token"},
        "sum": {"__prefect_kind": "jinja", "template": "{{ 6 * 7 }}"},
    }
    started = run_cli("run", "guarded_echo", "--async", "--json", "--input", json.dumps({"note": note}), env=ENV)
    assert started.returncode == 0, started.stderr
    execution_id = json.loads(started.stdout)["execution_id"]
    deadline = time.monotonic() + 60
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = json.loads(run_cli("status", execution_id, "--json", env=ENV).stdout)
        if shown["status"] in ("success", "failed", "cancelled"):
            break
        time.sleep(0.3)
    assert shown["status"] == "success", json.dumps(shown)
    assert shown["output"] == {"note": note}
    assert SECRET not in json.dumps(shown)
    # and the flow run in Prefect holds the input as sent, not a hydrated copy
    query = {"flow_runs": {"idempotency_key": {"any_": [execution_id]}}}
    with client(prefect_api) as prefect:
        (run,) = prefect.post("/flow_runs/filter", json=query).json()
    assert run["parameters"] == {"note": note}
    assert run["deployment_id"] and run["work_queue_id"]  # still the deployment's run, in its work pool
