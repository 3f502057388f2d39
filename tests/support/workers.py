"""`flowdeck worker` as a real subprocess, for tests that kill it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from flowdeck.local.daemons import terminate_group
from flowdeck.local.spawn import flowdeck_command, spawn
from support.paths import ROOT, TEST_HOME

__all__ = ["WorkerProcess"]


class WorkerProcess:
    """`flowdeck worker` as a real subprocess (so tests can kill -9 it)."""

    def __init__(self, definitions: Path, extra_env: dict[str, str] | None = None, *, serving: bool = True) -> None:
        """`serving`: wait until it says so (a worker killed by the first run it takes may
        die before it gets to say it: pass False and wait for its exit instead)."""
        env = dict(os.environ)
        env.update(extra_env or {})
        env["FLOWDECK_DEFINITIONS"] = str(definitions)
        self.log_path = TEST_HOME / f"worker-{time.monotonic_ns()}.log"
        self.spawned = spawn(flowdeck_command("worker"), self.log_path, env=env, cwd=ROOT, fresh_log=True)
        self.process = self.spawned.process
        if serving:
            self.spawned.wait_ready(self.spawned.says(b"serving"), 90)

    def kill(self) -> None:
        """kill -9: no clean-up, exactly like a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            terminate_group(self.process.pid)
