"""Floods of output from a code step (issue 12): what the engine holds is bounded while it
reads, not cut after everything has been read into memory."""

from __future__ import annotations

from sandbox_calls import run_in_engine

from flowdeck.runtime.steps import code as code_step

ENGINE_BUDGET_MB = 250  # the engine process itself (Python, flowdeck) is ~60-90 MB


def test_a_stderr_flood_is_cut_while_it_is_read() -> None:
    source = """
    import os
    def run(ctx):
        chunk = b"e" * (1024 * 1024)
        for _ in range(300):
            os.write(2, chunk)
        return "done"
    """
    status, outcome = run_in_engine(source, timeout=60)
    assert status == 0 and outcome is not None
    assert outcome.get("value") == "done", outcome
    assert outcome["engine_max_rss_mb"] < ENGINE_BUDGET_MB, outcome["engine_max_rss_mb"]


def test_a_huge_return_value_is_refused_by_the_sandbox() -> None:
    source = """
    def run(ctx):
        return "v" * (100 * 1024 * 1024)
    """
    status, outcome = run_in_engine(source, timeout=60, memory_mb=1024)
    assert status == 0 and outcome is not None
    assert "value" not in outcome, outcome["value_bytes"]
    assert f"{code_step.MAX_RESULT_BYTES // (1024 * 1024)} MiB" in outcome["error"], outcome["error"]
    assert outcome["engine_max_rss_mb"] < ENGINE_BUDGET_MB, outcome["engine_max_rss_mb"]


def test_a_forged_oversized_reply_on_fd_1_is_cut_while_it_is_read() -> None:
    """Bypassing the child's own check (writing to the reply pipe directly) does not help."""
    source = """
    import os
    def run(ctx):
        for fd in range(3, 10):
            try:
                chunk = b"r" * (1024 * 1024)
                for _ in range(100):
                    os.write(fd, chunk)
            except OSError:
                pass
        return "done"
    """
    status, outcome = run_in_engine(source, timeout=60)
    assert status == 0 and outcome is not None
    assert outcome["engine_max_rss_mb"] < ENGINE_BUDGET_MB, outcome["engine_max_rss_mb"]
    assert code_step.MAX_LOG_CHARS > 0
