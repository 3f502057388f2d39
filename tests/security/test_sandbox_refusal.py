"""A host that cannot isolate code steps refuses to run them, saying what is missing and
how to install it: never a silent downgrade to an unisolated process (issue 12)."""

from __future__ import annotations

import pytest
from sandbox_calls import run

from flowdeck.errors import StepError
from flowdeck.runtime.sandbox import host


@pytest.fixture(autouse=True)
def _fresh_pool() -> None:
    host.pool.close()


def test_without_bubblewrap_code_steps_refuse_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FLOWDECK_SANDBOX_BWRAP", str(tmp_path / "no-such-bwrap"))
    host.pool.close()
    with pytest.raises(StepError) as caught:
        run("def run(ctx):\n    return 'ran without isolation'\n")
    message = caught.value.message
    assert "no-such-bwrap" in message and "bubblewrap" in message
    assert "apt-get install bubblewrap" in message and "FLOWDECK_SANDBOX_BWRAP" in message


def test_a_bwrap_that_cannot_start_a_sandbox_is_refused_too(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FLOWDECK_SANDBOX_BWRAP", str(fake))
    host.pool.close()
    with pytest.raises(StepError, match="Permission denied") as caught:
        run("def run(ctx):\n    return 'ran without isolation'\n")
    assert "cannot isolate code steps" in caught.value.message


def test_after_the_setting_is_fixed_code_steps_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_SANDBOX_BWRAP", "/nonexistent/bwrap")
    with pytest.raises(StepError):
        run("def run(ctx):\n    return 1\n")
    monkeypatch.delenv("FLOWDECK_SANDBOX_BWRAP")
    host.pool.close()
    assert run("def run(ctx):\n    return 1\n") == 1
