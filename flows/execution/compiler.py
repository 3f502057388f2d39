"""A validated definition compiled to a Prefect flow.

The flow is what Prefect-native hosting runs: `prefect deploy` with `prefect.yaml`, a
`prefect worker start --pool flowdeck` process worker, or a plain call of the flow object.
Its body is the same durable execution the flowdeck worker runs in-process, so a run
behaves the same whoever hosts it: waits and retry delays end the process with the run
`Scheduled` (Prefect's `Pause` signal tells the engine to exit quietly), finished steps
are skipped on resume, the outcome body is the run's result.
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect import Flow
from prefect.context import FlowRunContext
from prefect.exceptions import Pause

from flowdeck.definition.model import WorkflowDefinition
from flowdeck.store import encoding


def _signature(definition: WorkflowDefinition) -> inspect.Signature:
    properties = definition.input_schema.get("properties") or {}
    return inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
            for name in properties
            if name.isidentifier()
        ]
    )


class WorkflowFailed(Exception):
    """Raised so Prefect's engine marks the run Failed with the step's message."""


def compile_flow(definition: WorkflowDefinition) -> Flow[..., Any]:
    async def execute(**input_data: Any) -> dict[str, Any]:
        from flowdeck.execution import durable
        from flowdeck.execution.service import Flowdeck
        from flowdeck.store.logs import flush_events
        from flowdeck.store.prefect_api import PrefectAPI

        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            raise RuntimeError("a compiled flowdeck flow runs inside a Prefect flow run")
        engine = Flowdeck.open(api_url=None)
        try:
            flow_run = await engine.api.read_flow_run(context.flow_run.id)
            assert flow_run is not None
            if not encoding.has_workflow_tag(flow_run.tags):
                # A run created by Prefect alone (e.g. a direct call): tag it as flowdeck's.
                flow_run.tags = encoding.run_tags(definition, "async")
                await engine.api.update_flow_run_tags(flow_run.id, flow_run.tags)
            disposition = await durable.execute_flow_run(
                engine.api,
                flow_run,
                definition,
                http=engine.http,
                resolve_workflow=engine.resolve_for_step,
                final_state=False,
            )
        finally:
            await engine.aclose()
            await flush_events()
        if disposition.kind != "finished":
            refreshed = await PrefectAPI().read_flow_run(context.flow_run.id)
            raise Pause(state=refreshed.state if refreshed else None)
        outcome = disposition.outcome
        assert outcome is not None
        if outcome.status != "success":
            error = outcome.error or {}
            raise WorkflowFailed(f"step '{error.get('step_name')}' failed: {error.get('message')}")
        return outcome.output or {}

    execute.__name__ = definition.id
    # Prefect maps a run's parameters onto the function's signature: give it the input
    # schema's fields (Prefect-hosted runs pass the deployment's parameters as keywords).
    execute.__signature__ = _signature(definition)  # type: ignore[attr-defined]
    return Flow(
        fn=execute,
        name=definition.id,
        version=str(definition.version),
        description=definition.description or definition.name,
        flow_run_name=encoding.flow_run_name(definition),
        validate_parameters=False,
        log_prints=False,
    )
