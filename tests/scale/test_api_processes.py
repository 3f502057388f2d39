"""Prefect's multi-process server (several API processes, one services process, Redis)."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from scale_cluster import Cluster, submit_batch

pytestmark = pytest.mark.timeout(900)


def test_two_api_processes_start_on_a_fresh_database_and_stay_up() -> None:
    """On a fresh database, each API process used to register Prefect's block types at
    startup; two at once collided, and the loser took the whole server down a moment after
    it first answered. flowdeck registers them once before starting the processes."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="flowdeck-scale-")), api_processes=2)
    cluster.start()
    try:
        cluster.start_worker(concurrency=20)
        _, api_url = cluster.start_api()
        time.sleep(3)  # the failure showed once both processes had finished starting
        ids = submit_batch(api_url, cluster.token, "scale_compute", [{"n": i} for i in range(20)])
        states = cluster.wait_final(ids, timeout=120)
        assert Counter(states.values()) == {"COMPLETED": 20}
        server_log = (cluster.root / "server" / "server.log").read_text()
        assert "Application startup failed" not in server_log
        with cluster.prefect() as client:
            assert client.get("/health").status_code == 200
            block_types = client.post("/block_types/filter", json={}).json()
        assert any(b["slug"] == "redis-database" for b in block_types)
    finally:
        cluster.stop()
