"""`flowdeck ...` run as a user runs it: a subprocess in the repository."""

from __future__ import annotations

import os
import subprocess
import sys

from support.paths import ROOT

__all__ = ["run_cli"]


def run_cli(
    *args: str, input_text: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `flowdeck ...` as a user would, in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flowdeck", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        input=input_text,
        timeout=timeout,
    )
