"""`flowdeck server start` options and `flowdeck storage`: bad input is refused before
anything starts, with a message that says what to give. (The working topologies, on
PostgreSQL and Redis, are exercised by tests/scale.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import run_cli


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--api-processes", "2"], ["needs PostgreSQL", "needs Redis"]),
        (["--database", "mysql://root@localhost/prefect"], ["postgresql+asyncpg://"]),
        (["--database", "postgresql+asyncpg://postgres@127.0.0.1/x", "--redis", "127.0.0.1:6379"], ["not a Redis URL"]),
        (["--api-processes", "0"], ["at least 1"]),
    ],
)
def test_server_start_refuses_a_topology_that_cannot_work(
    tmp_path: Path, options: list[str], expected: list[str]
) -> None:
    home = tmp_path / "home"
    result = run_cli("server", "start", *options, env={"FLOWDECK_HOME": str(home), "FLOWDECK_SERVER_PORT": "1"})
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "server.pid").exists()  # nothing was started


def test_storage_show_names_the_local_default(prefect_api: str) -> None:
    result = run_cli("storage", "show")
    assert result.returncode == 0, result.stderr
    assert "local files" in result.stdout


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("somewhere", "neither a Redis URL nor a block slug"),
        ("s3-bucket/not-saved", "no block 's3-bucket/not-saved'"),
        ("redis://127.0.0.1:1/0", "cannot reach Redis at 127.0.0.1:1"),
    ],
)
def test_storage_set_refuses_what_cannot_be_used(prefect_api: str, target: str, expected: str) -> None:
    result = run_cli("storage", "set", target)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert "local files" in run_cli("storage", "show").stdout  # the default did not change
