"""The embedded Prefect server's CPU priority (FLOWDECK_SERVER_NICE): applied to the
process and to its autogroup (it leads a session of its own), and bounded."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flowdeck.errors import ConfigurationError
from flowdeck.local import prefect_server

pytestmark = pytest.mark.fast


def test_lower_priority_sets_the_process_and_its_autogroup() -> None:
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        prefect_server.lower_priority(process.pid, 5)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == 5
        autogroup = Path(f"/proc/{process.pid}/autogroup")
        if autogroup.exists():
            assert autogroup.read_text().strip().endswith("nice 5")
    finally:
        process.kill()
        process.wait()


def test_nice_zero_leaves_the_server_alone() -> None:
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        before = os.getpriority(os.PRIO_PROCESS, process.pid)
        prefect_server.lower_priority(process.pid, 0)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == before
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("value", ["20", "-1", "five", "1.5"])
def test_a_nice_value_out_of_bounds_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FLOWDECK_SERVER_NICE", value)
    with pytest.raises(ConfigurationError, match="FLOWDECK_SERVER_NICE must be a whole number from 0 to 19"):
        prefect_server.start()
