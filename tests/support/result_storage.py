"""The journal pointed at a storage of a test's choosing, for the length of a `with`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.results import ResultStore
from prefect.serializers import JSONSerializer

from flowdeck.store import journal


@contextmanager
def journal_storage(storage: Any) -> Iterator[None]:
    """`flowdeck.store.journal` writes to and reads from `storage` (a Prefect storage block)."""
    saved = journal._store
    journal._store = ResultStore(result_storage=storage, serializer=JSONSerializer(), cache_result_in_memory=False)
    try:
        yield
    finally:
        journal._store = saved
