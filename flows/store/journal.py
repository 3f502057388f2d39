"""The journal: step entries and outcomes in Prefect's result storage.

Each finished step's journal entry and each execution's outcome is a result record (keys
in `flowdeck.store.encoding`), so any process (any machine, with shared storage) reads
them. A storage that cannot be reached is waited for (`STORAGE_PATIENCE_SECONDS`) rather
than taken for a missing record: a journal entry read as missing would run a finished step
again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect._internal.compatibility.blocks import call_explicitly_async_block_method
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.results import ResultStore, get_default_result_storage
from prefect.serializers import JSONSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flowdeck.errors import PrefectUnavailable
from flowdeck.store import encoding

_store: ResultStore | None = None
T = TypeVar("T")


def result_store() -> ResultStore:
    """Prefect's default result storage ($PREFECT_HOME/storage or the configured block)."""
    global _store
    if _store is None:
        _store = ResultStore(
            result_storage=get_default_result_storage(_sync=True),  # type: ignore[call-arg, arg-type]
            serializer=JSONSerializer(),
            cache_result_in_memory=False,
        )
    return _store


# How long a journal or outcome write (or a journal read, on resume) waits for a result
# storage that cannot be reached (a Redis restarting, say) before the attempt gives up.
STORAGE_PATIENCE_SECONDS = 60.0
# Errors that mean "cannot reach the storage now", as opposed to a record that is missing
# or cannot be serialized.
_UNREACHABLE = (OSError, TimeoutError, RedisConnectionError, RedisTimeoutError)


async def _patiently(operation: Callable[[], Awaitable[T]], what: str, patience: float) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.05
    while True:
        try:
            return await operation()
        except _UNREACHABLE as error:
            if loop.time() >= deadline:
                raise PrefectUnavailable(
                    f"the result storage cannot be reached ({what}): {error}; "
                    "check it is running (`flowdeck storage show` names it)"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def write_record(key: str, value: Any, patience: float = STORAGE_PATIENCE_SECONDS) -> ResultRecord[Any]:
    (record,) = await write_records([(key, value)], patience)
    return record


# The keys flowdeck writes (`encoding.journal_key`, `outcome_key`): one plain file name each.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.#-]*")
_local_bases: dict[str, Path] = {}
# Threads of the journal's own: code and action steps block the loop's default executor for
# as long as they run, and a finished step's journal write must not wait behind them.
_writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowdeck-journal")


async def write_records(
    items: list[tuple[str, Any]], patience: float = STORAGE_PATIENCE_SECONDS
) -> list[ResultRecord[Any]]:
    """Several records (key, value) at once, in the order given.

    On local files (the embedded default) they are written in one call on the journal's
    own threads:
    Prefect's `apersist_result_record` resolves the base path twice per record and makes
    three thread hops (open, write, close) on the caller's event loop, which at 200
    concurrent sync calls was a quarter of the API process's time (docs/benchmarks.md,
    session 7). The files are the ones Prefect writes: the same path and the same
    `ResultRecord` bytes (`test_journal.py` holds them equal). Other storages go through
    Prefect's own method, one call per record."""
    store = result_store()
    storage = store.result_storage
    if type(storage) is not LocalFileSystem or not all(_PLAIN_KEY.fullmatch(key) for key, _ in items):
        records = [store.create_result_record(value, key=key) for key, value in items]
        await asyncio.gather(*(_persist(store, record, patience) for record in records))
        return records
    base = _local_base(storage)
    block_id = store.result_storage_block_id
    records = [
        ResultRecord(
            result=value,
            metadata=ResultRecordMetadata(
                serializer=store.serializer,
                storage_key=str(base / key) if block_id is None else key,
                storage_block_id=block_id,
            ),
        )
        for key, value in items
    ]

    def write() -> None:
        base.mkdir(parents=True, exist_ok=True)
        for (key, _), record in zip(items, records, strict=True):
            (base / key).write_bytes(record.serialize())

    loop = asyncio.get_running_loop()
    await _patiently(lambda: loop.run_in_executor(_writers, write), f"writing {len(items)} records to {base}", patience)
    for record in records:
        record.mark_persisted()
    return records


async def _persist(store: ResultStore, record: ResultRecord[Any], patience: float) -> None:
    await _patiently(lambda: store.apersist_result_record(record), f"writing {record.metadata.storage_key}", patience)


def _local_base(storage: LocalFileSystem) -> Path:
    """The storage's base directory, resolved as Prefect resolves it, once per process."""
    configured = str(storage.basepath or ".")
    if configured not in _local_bases:
        _local_bases[configured] = storage._resolve_path(None)  # type: ignore[arg-type]  # the base itself
    return _local_bases[configured]


async def read_record(key: str, patience: float = STORAGE_PATIENCE_SECONDS) -> Any | None:
    """The record's value, or None if there is none. One read: Prefect's `exists` reads the
    whole record too, and answers False on any error, which would take a storage that is
    down for a missing journal entry and run a finished step again."""
    storage = cast(WritableFileSystem, result_store().result_storage)

    async def read() -> bytes | None:
        try:
            content: bytes | None = await call_explicitly_async_block_method(storage, "read_path", (key,), {})
            return content
        except (ValueError, FileNotFoundError, KeyError):  # missing (a local file, for one)
            return None

    content = await _patiently(read, f"reading {key}", patience)
    if not content:
        return None
    return ResultRecord.deserialize(content, backup_serializer=JSONSerializer()).result


async def write_step(execution_id: str, step_key: str, entry: dict[str, Any]) -> None:
    """A step's journal entry (JournalEntry.to_json())."""
    await write_record(encoding.journal_key(execution_id, step_key), entry)


async def write_steps(execution_id: str, entries: dict[str, dict[str, Any]]) -> None:
    """Several steps' journal entries at once (a drain batch, a hand-off's journal)."""
    if entries:
        await write_records([(encoding.journal_key(execution_id, key), entry) for key, entry in entries.items()])


async def read_step(execution_id: str, step_key: str, patience: float = STORAGE_PATIENCE_SECONDS) -> Any | None:
    return await read_record(encoding.journal_key(execution_id, step_key), patience=patience)


async def write_outcome(execution_id: str, record: dict[str, Any]) -> ResultRecord[Any]:
    return await write_record(encoding.outcome_key(execution_id), record)


async def read_outcome(execution_id: str, patience: float = STORAGE_PATIENCE_SECONDS) -> Any | None:
    return await read_record(encoding.outcome_key(execution_id), patience=patience)
