"""The no-Prefect baseline of `bench/sync.py`'s HTTP section, run as its own process:
flowdeck's own API app (the same routes, token check, input validation and error
envelope) under the same uvicorn settings as `flowdeck api`, over an engine whose sync
call runs the interpreter and records nothing (no outbox, no drain, no Prefect write).
What flowdeck's figure adds over this one is the recording, and nothing else.

    python bench/_unrecorded_api.py PORT DEFINITIONS_DIR
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from flowdeck.api import create_app
from flowdeck.execution.service import Flowdeck
from flowdeck.execution.sync import SyncCall
from flowdeck.runtime.interpreter import Run
from flowdeck.store import encoding


class Unrecorded(Flowdeck):
    async def run_sync(self, workflow_id: str, version: str | int | None, input_data: Any, **options: Any) -> SyncCall:
        allow_draft = bool(options.get("allow_draft", False))
        definition = self.prepare(workflow_id, version, input_data, allow_draft=allow_draft)
        execution_id = encoding.mint_execution_id()
        run = Run(definition, execution_id, "sync", input_data, trigger=options.get("trigger"), http=self.http)
        run.resolve_workflow = self.resolve_for_step
        outcome = await run.execute()

        async def nothing_owed() -> None:
            return None

        return SyncCall(body=outcome.body(execution_id), execution_id=execution_id, finish=nothing_owed)


def main(port: int, definitions: str) -> None:
    engine = Unrecorded.open(definitions)
    application = create_app(engine=engine)
    uvicorn.run(application, host="127.0.0.1", port=port, log_level="info", timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
