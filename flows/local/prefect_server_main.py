"""`python -m flows.prefect_server_main ...`: `prefect server start` for the embedded SQLite server.

One change to Prefect's server, for SQLite only: write transactions begin `IMMEDIATE`.
Prefect begins most of them `DEFERRED`; in WAL mode a deferred transaction that read and
then writes while another writer committed fails at once with SQLITE_BUSY (busy_timeout
does not apply to that upgrade), the API answers 503 and clients back off
(PrefectHQ/prefect#18934). Beginning them IMMEDIATE makes writers queue on SQLite's lock
(busy_timeout, 60 s) instead: the same serial order, without the failed round trips.
PostgreSQL servers are untouched (they are started by Prefect's own command).

And one for the task-run recorder: Prefect rounds its flush interval down to whole seconds
(`int(flush_interval)`), so a batching recorder would hold a step's task run back for at
least a second; here the interval is used as set (flowdeck sets 0.05 s, see
`prefect_server.server_tuning`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any


def _patch_sqlite_transactions() -> None:
    from prefect.server.database import configurations

    original = configurations.AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_transaction(self: Any, session: Any, with_for_update: bool = False) -> AsyncGenerator[Any, None]:
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    configurations.AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def _patch_task_run_recorder_interval() -> None:
    from prefect.server.services import task_run_recorder
    from prefect.settings import get_current_settings

    original = task_run_recorder.consumer

    def consumer(write_batch_size: int, flush_every: float, *args: Any, **kwargs: Any) -> Any:
        interval = get_current_settings().server.services.task_run_recorder.flush_interval
        return original(write_batch_size, interval, *args, **kwargs)  # type: ignore[arg-type]  # a float, on purpose

    task_run_recorder.consumer = consumer


def main() -> None:
    _patch_sqlite_transactions()
    _patch_task_run_recorder_interval()
    from prefect.cli import app

    sys.argv = ["prefect", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
