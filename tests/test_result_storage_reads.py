"""Journal reads and writes against a real Redis result storage, up and down.

A journal entry that cannot be read because the storage is down must not be taken for a
missing one: the step would run a second time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect_redis import RedisDatabase
from support.result_storage import journal_storage

from flowdeck.errors import PrefectUnavailable
from flowdeck.local.spawn import free_port as _free_port
from flowdeck.store import journal as recording

REDIS_HOST = "127.0.0.1"


@pytest.fixture
def redis_store(request: pytest.FixtureRequest, prefect_api: str) -> Iterator[int]:
    """Point flowdeck's result store at a Redis on a port of the test's choosing, through a
    saved block as `flowdeck storage set` makes one."""
    port = getattr(request, "param", None) or int(os.environ.get("FLOWDECK_TEST_REDIS_PORT", "6379"))
    block = RedisDatabase(host=REDIS_HOST, port=port, db=12)
    block.save(f"flowdeck-test-redis-{port}", overwrite=True)
    with journal_storage(block):
        yield port


def test_a_record_written_is_read_back_and_a_missing_one_is_none(redis_store: int) -> None:
    key = f"flowdeck-test-{time.time_ns()}"

    async def scenario() -> tuple[object, object]:
        await recording.write_record(key, {"status": "done", "output": {"n": 1}})
        return await recording.read_record(key), await recording.read_record(key + "-missing")

    found, missing = asyncio.run(scenario())
    assert found == {"status": "done", "output": {"n": 1}}
    assert missing is None


@pytest.mark.parametrize("redis_store", [_free_port()], indirect=True)
def test_a_storage_that_is_down_is_an_error_not_a_missing_record(redis_store: int) -> None:
    with pytest.raises(PrefectUnavailable, match="result storage cannot be reached"):
        asyncio.run(recording.read_record("flowdeck-anything", patience=0))
    with pytest.raises(PrefectUnavailable, match="result storage cannot be reached"):
        asyncio.run(recording.write_record("flowdeck-anything", {"x": 1}, patience=0.3))


@pytest.mark.parametrize("redis_store", [_free_port()], indirect=True)
def test_a_write_waits_for_a_storage_that_comes_back(redis_store: int, tmp_path: Path) -> None:
    key = f"flowdeck-test-{time.time_ns()}"

    async def scenario() -> object:
        write = asyncio.create_task(recording.write_record(key, {"status": "done"}, patience=30))
        await asyncio.sleep(1.0)
        assert not write.done()  # still waiting: nothing lost, nothing failed yet
        server = subprocess.Popen(
            ["redis-server", "--bind", REDIS_HOST, "--port", str(redis_store), "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(write, timeout=30)
            return await recording.read_record(key)
        finally:
            server.terminate()
            server.wait()

    assert asyncio.run(scenario()) == {"status": "done"}
