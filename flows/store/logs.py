"""Run log lines shipped to Prefect (the UI's and the dashboard's log pane), and the flush
that makes sure emitted events and logs have left the process."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID


def log_entry(level: int, message: str, task_run_id: UUID | None) -> dict[str, Any]:
    """A log line as Prefect's log worker sends it (without its flow run, added on send)."""
    return {
        "name": "flowdeck",
        "level": level,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(),
        "task_run_id": str(task_run_id) if task_run_id else None,
    }


def send_log(entry: dict[str, Any], flow_run_id: UUID) -> None:
    """Batched by Prefect's own log worker."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.instance().send({**entry, "flow_run_id": str(flow_run_id)})


async def flush_events(timeout: float = 5.0) -> None:
    """Wait until emitted events and logs have left the process (call before it exits)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # Its "still processing items" progress note is noise on a CLI's stderr.
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
    logging.getLogger("APILogWorker").setLevel(logging.ERROR)
    for service in (EventsWorker, APILogWorker):
        result = service.drain_all(timeout=timeout)
        if asyncio.iscoroutine(result):
            await result
