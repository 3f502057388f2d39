"""What handlers get injected: the one engine (`flows.service.Flowdeck`) of this process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

if TYPE_CHECKING:  # importing flows.service imports prefect: only after configure_environment
    from flowdeck.execution.service import Flowdeck

Engine = Any  # a Flowdeck; typed loosely so that importing the routes does not import prefect


def engine_of(request: Request) -> Flowdeck:
    """The engine, its definitions loaded again first when their files changed (as the
    worker does): a new file is runnable and a deleted one unknown, without a restart."""
    engine = request.app.state.engine
    watch = getattr(request.app.state, "definitions_watch", None)
    if watch is not None and watch.changed():
        engine.reload(engine.catalog.directory)
    return engine  # type: ignore[no-any-return]


__all__ = ["Engine", "engine_of"]
