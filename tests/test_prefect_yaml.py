"""prefect.yaml declares the same deployments as flowdeck creates, and stays in sync."""

from __future__ import annotations

from support.cli import run_cli
from support.paths import EXAMPLE_DEFINITIONS, ROOT


def test_prefect_yaml_is_in_sync_with_definitions() -> None:
    result = run_cli("prefect-yaml", "--check")
    assert result.returncode == 0, result.stderr


def test_prefect_yaml_check_notices_a_stale_file(tmp_path) -> None:
    stale = tmp_path / "prefect.yaml"
    stale.write_text((ROOT / "prefect.yaml").read_text().replace("version: '2'", "version: '9'"))
    result = run_cli("prefect-yaml", "--check", "--output", str(stale))
    assert result.returncode == 1
    assert "out of date" in result.stderr


def test_prefect_yaml_deployments_match_the_published_and_live_versions() -> None:
    import yaml

    from flowdeck.definition.catalog import load_catalog
    from flowdeck.store.deployments import parameter_schema

    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    catalog = load_catalog(EXAMPLE_DEFINITIONS)
    expected = {(d.id, f"v{d.version}"): d for d in catalog.definitions if d.status in ("published", "live")}
    # deployments of workflows a user added to definitions/ are theirs; the examples' are exact
    examples = {d.id for d in catalog.definitions}
    declared = [d for d in declared if d["flow_name"] in examples]
    assert {(d["flow_name"], d["name"]) for d in declared} == set(expected)
    for item in declared:
        definition = expected[(item["flow_name"], item["name"])]
        assert item["parameter_openapi_schema"] == parameter_schema(definition)
        assert item["entrypoint"] == f"flowdeck.execution.entrypoint:{definition.id}"
        assert item["work_pool"]["name"] == "flowdeck"


def test_entrypoint_loads_the_compiled_prefect_flow() -> None:
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint("flowdeck.execution.entrypoint:hello")
    assert flow.name == "hello"
    assert flow.version == "1"


def test_a_plain_prefect_process_worker_runs_a_flowdeck_deployment(prefect_api: str) -> None:
    """The `prefect deploy` + `prefect worker start` path: Prefect's own process worker
    runs the compiled flow, with the deployment's parameters as the input. The run goes to
    a queue of its own, so the worker takes this run and no other test's."""
    import json
    import subprocess
    import sys

    from support.prefect import client

    deployed = run_cli("deploy")
    assert deployed.returncode == 0, deployed.stderr
    api = prefect_api
    prefect = client(api)
    queue = "prefect-hosted-test"
    prefect.post(f"{api}/work_pools/flowdeck/queues", json={"name": queue}).raise_for_status()
    deployment = prefect.get(f"{api}/deployments/name/hello/v1").json()
    created = prefect.post(
        f"{api}/deployments/{deployment['id']}/create_flow_run",
        json={"parameters": {"name": "Prefect"}, "work_queue_name": queue},
    )
    created.raise_for_status()
    flow_run_id = created.json()["id"]
    worker = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "flowdeck", "--work-queue", queue, "--run-once"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
    status = run_cli("status", "exec_" + flow_run_id.replace("-", ""), "--json")
    body = json.loads(status.stdout)
    assert body["status"] == "success", body
    assert body["output"] == {"message": "Hello, Prefect!", "greeting": "by_name"}
