"""The fault-and-load suite: flowdeck on a PostgreSQL-backed Prefect with many workers.

Runs in the normal suite at small sizes, so it stays honest on every change. The sizes the
documentation reports (docs/reliability.md) are one command away:

    FLOWDECK_SCALE=full .venv/bin/python -m pytest tests/scale -s

Each test writes what it measured to .scale-reports/<test>.json (FLOWDECK_SCALE_REPORTS).
Needs PostgreSQL (FLOWDECK_TEST_POSTGRES, default postgresql+asyncpg://postgres@127.0.0.1:5432)
and Redis (FLOWDECK_TEST_REDIS, default redis://127.0.0.1:6379, database 11).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scale_cluster import Cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh PostgreSQL database and server for each test, torn down after it."""
    built = Cluster(Path(tempfile.mkdtemp(prefix="flowdeck-scale-")),
                    api_processes=int(os.environ.get("FLOWDECK_SCALE_API_PROCESSES") or 1))
    built.start()
    try:
        yield built
    finally:
        built.stop()
