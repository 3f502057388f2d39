"""The outbox on its own (no Prefect): what it commits survives kill -9, one process wins
a drain lease or an adoption, the backlog bound refuses new work, ids are what they say."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.cli import run_cli

from flowdeck.errors import ConfigurationError, PrefectUnavailable
from flowdeck.store import encoding
from flowdeck.store.drain import check_room
from flowdeck.store.outbox import Outbox, is_alive, process_token


def new(outbox: Outbox, execution_id: str, mode: str = "sync") -> None:
    outbox.create(execution_id, mode=mode, workflow_id="w", version=1, status="running", payload={"a": 1})


@pytest.mark.parametrize("mode", ["normal", "full"])
def test_what_is_committed_survives_kill_9(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_OUTBOX_SYNC", mode)
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from flowdeck.store.outbox import Outbox

        async def main():
            outbox = Outbox(Path({str(tmp_path / "outbox.db")!r}))
            outbox.create("exec_a", mode="sync", workflow_id="w", version=1, status="running", payload={{}})
            outbox.append("exec_a", "step", {{"key": "s1", "entry": {{"status": "done", "output": 7}}}})
            await outbox.committed()
            outbox.append("exec_a", "step", {{"key": "s2"}})  # buffered, never committed
            print("committed", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9 and "committed" in result.stdout, result.stderr
    outbox = Outbox(tmp_path / "outbox.db")
    entries = outbox.entries("exec_a")
    assert [e.kind for e in entries] == ["created", "step"]
    assert entries[1].payload["entry"]["output"] == 7
    row = outbox.execution("exec_a")
    assert row is not None and row.last_seq == entries[-1].seq and not row.drained
    assert [r.execution_id for r in outbox.orphans()] == ["exec_a"]  # its process is dead


def test_outbox_durability_is_the_configured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for mode, level in (("normal", 1), ("full", 2), ("FULL", 2)):
        monkeypatch.setenv("FLOWDECK_OUTBOX_SYNC", mode)
        outbox = Outbox(tmp_path / f"{mode}.db")
        assert outbox._db.execute("pragma synchronous").fetchone()[0] == level
    monkeypatch.setenv("FLOWDECK_OUTBOX_SYNC", "off")
    with pytest.raises(ConfigurationError, match="FLOWDECK_OUTBOX_SYNC must be one of normal, full, not 'off'"):
        Outbox(tmp_path / "off.db")


def test_a_bad_outbox_setting_is_one_line_from_the_api_command(tmp_path: Path) -> None:
    done = run_cli("api", "--insecure-dev", env={"FLOWDECK_OUTBOX_SYNC": "sometimes"}, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "FLOWDECK_OUTBOX_SYNC must be one of normal, full, not 'sometimes'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FLOWDECK_OUTBOX_SYNC", "off", "FLOWDECK_OUTBOX_SYNC must be one of normal, full"),
        ("FLOWDECK_SERVER_NICE", "99", "FLOWDECK_SERVER_NICE must be a whole number from 0 to 19"),
        ("FLOWDECK_SANDBOX_CPUS", "lots", "FLOWDECK_SANDBOX_CPUS must be a number of cores"),
    ],
)
def test_a_bad_setting_stops_a_command_before_it_starts_anything(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    home = tmp_path / "home"
    env = {variable: value, "FLOWDECK_HOME": str(home), "PREFECT_API_URL": ""}  # would start a local server
    done = run_cli("run", "hello", env=env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not home.exists() or not any(home.iterdir()), sorted(p.name for p in home.iterdir())


def test_one_drain_lease_and_one_adoption_among_processes(tmp_path: Path) -> None:
    first, second = Outbox(tmp_path / "o.db"), Outbox(tmp_path / "o.db")  # two connections
    one, two = f"{process_token()}#1", f"{process_token()}#2"  # live claimants
    new(first, "exec_b")
    first.commit_now()
    assert first.claim("exec_b", one) is True
    assert second.claim("exec_b", two) is False
    first.release("exec_b", one)
    assert second.claim("exec_b", two) is True
    assert first.mark_drained("exec_b", 1, one) is False  # not the lease holder
    assert second.claim("exec_b", "99999999:1#3") is False  # a live lease holder keeps it
    assert first.append_if_open("exec_b", "handoff", {"journal": {}}, status="running") is True
    assert second.append_if_open("exec_b", "handoff", {"journal": {}}, status="running") is False
    assert [e.kind for e in second.entries("exec_b")] == ["created", "handoff"]


def test_the_backlog_bound_refuses_new_work(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    for index in range(3):
        new(outbox, f"exec_{index}")
    outbox.commit_now()
    check_room(outbox, 4)  # below the bound: fine
    with pytest.raises(PrefectUnavailable, match=r"3 executions are committed here but not yet in Prefect"):
        check_room(outbox, 3)
    assert outbox.backlog()["executions"] == 3
    assert PrefectUnavailable.http_status == 503


def test_appends_are_grouped_and_committed_on_demand(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")

    async def go() -> int:
        new(outbox, "exec_g")
        for index in range(50):
            outbox.append("exec_g", "event", {"n": index})
        other = Outbox(tmp_path / "o.db")
        assert other.execution("exec_g") is None  # buffered, not yet on disk
        await outbox.committed()
        return len(other.entries("exec_g"))

    assert asyncio.run(go()) == 51


def test_process_tokens_and_ids() -> None:
    assert is_alive(process_token())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not is_alive(f"{dead.stdout.strip()}:1")
    minted = [encoding.mint_execution_id() for _ in range(100)]
    assert len(set(minted)) == 100 and all(encoding.is_execution_id(i) for i in minted)
    assert encoding.keyed_execution_id("w", "k") == encoding.keyed_execution_id("w", "k")
    assert encoding.keyed_execution_id("w", "k") != encoding.keyed_execution_id("v", "k")
    query = encoding.execution_filter(["exec_" + "ab" * 16, "nope"])
    assert query["operator"] == "or_" and query["idempotency_key"]["any_"] == ["exec_" + "ab" * 16]
