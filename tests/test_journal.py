"""Journal writes on local result storage (the embedded default): several records in one
call on the journal's own threads, files identical to the ones Prefect's ResultStore writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem
from support.result_storage import journal_storage

from flowdeck.errors import PrefectUnavailable
from flowdeck.store import journal

pytestmark = pytest.mark.fast


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "storage"
    with journal_storage(LocalFileSystem(basepath=str(base))):
        yield base


def test_records_written_together_are_the_files_prefect_writes(local_store: Path) -> None:
    entries = {"fetch": {"status": "done", "output": {"n": 1}}, "loop.0.add": {"status": "done", "output": [1, 2]}}

    async def scenario() -> tuple[dict[str, bytes], dict[str, bytes], dict[str, object]]:
        await journal.write_steps("exec_" + "a" * 32, entries)
        ours = {p.name: p.read_bytes() for p in local_store.iterdir()}
        for path in local_store.iterdir():
            path.unlink()
        store = journal.result_store()
        for name in ours:
            await store.apersist_result_record(store.create_result_record(journal_value(ours[name]), key=name))
        prefects = {p.name: p.read_bytes() for p in local_store.iterdir()}
        read = {key: await journal.read_step("exec_" + "a" * 32, key) for key in entries}
        return ours, prefects, read

    ours, prefects, read = asyncio.run(scenario())
    assert len(ours) == 2
    assert ours == prefects
    assert read == entries


def journal_value(content: bytes) -> object:
    from prefect._internal.result_records import ResultRecord

    return ResultRecord.deserialize(content).result


def test_the_outcome_record_names_its_file(local_store: Path) -> None:
    record = asyncio.run(journal.write_outcome("exec_" + "b" * 32, {"status": "success", "output": {"ok": True}}))
    assert record.metadata.storage_key is not None
    assert Path(record.metadata.storage_key).parent == local_store.resolve()
    assert Path(record.metadata.storage_key).is_file()
    assert asyncio.run(journal.read_outcome("exec_" + "b" * 32)) == {"status": "success", "output": {"ok": True}}


def test_a_key_that_leaves_the_storage_is_refused(local_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside of the base path"):
        asyncio.run(journal.write_record("../escaped", {"status": "done"}))
    assert not (tmp_path / "escaped").exists()


def test_a_storage_that_cannot_be_written_is_an_error_after_patience(local_store: Path) -> None:
    local_store.parent.mkdir(parents=True, exist_ok=True)
    local_store.write_text("a file where the storage directory should be")
    with pytest.raises(PrefectUnavailable, match="cannot be reached"):
        asyncio.run(journal.write_records([("flowdeck-x-step-a", {"status": "done"})], patience=0.3))


def test_steps_holding_every_default_executor_thread_do_not_hold_up_the_journal(local_store: Path) -> None:
    """Code and action steps block the loop's default executor while they run; a finished
    step's journal write goes through threads of its own."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        busy = asyncio.ensure_future(asyncio.to_thread(release.wait, 10))  # a long code step
        await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(journal.write_step("exec_" + "c" * 32, "done", {"status": "done"}), timeout=2)
            return True
        except TimeoutError:
            return False
        finally:
            release.set()
            await busy

    assert asyncio.run(scenario())
    assert any(p.name.endswith("-step-done") for p in local_store.iterdir())
