"""A code step's share of the CPU (issue 12): one sandbox's whole tree gets at most
FLOWDECK_SANDBOX_CPUS cores (1.0) and a lower weight than the engine, in its own cgroup;
and the cgroup v2 code path, checked as files in a cgroup v2 tree made in tmp_path (this
machine has cgroup v1 only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sandbox_calls import run

from flowdeck.runtime.sandbox import cgroups, host

# Two processes spin for 1.5 s of wall time; what they got is read from os.times() of the
# step's own process, which counts its waited-for children.
SPIN_TWO = """
import os, time
def run(ctx):
    started, before = time.monotonic(), os.times()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + ctx["seconds"]
            while time.monotonic() < end:
                pass
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    after = os.times()
    cpu = after.children_user - before.children_user + after.children_system - before.children_system
    return {"cpu": cpu, "wall": time.monotonic() - started}
"""


@pytest.fixture
def cpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set FLOWDECK_SANDBOX_CPUS for the next sandboxes (the pool's idle ones were made before)."""

    def use(value: str) -> None:
        monkeypatch.setenv("FLOWDECK_SANDBOX_CPUS", value)
        host.pool.close()

    yield use
    monkeypatch.delenv("FLOWDECK_SANDBOX_CPUS", raising=False)
    host.pool.close()


def test_a_step_gets_at_most_its_share_of_a_core(cpus: Callable[[str], None]) -> None:
    """A quarter of a core: far less than this machine gives two spinners even when other
    jobs load it (0.9 to 2 s of CPU per second, measured without the quota), so the bound
    is the quota's, not the machine's. Slack: one 25 ms period and the clock's 10 ms ticks."""
    cpus("0.25")
    used = run(SPIN_TWO, {"seconds": 1.5}, timeout=20)
    assert used["wall"] >= 1.5
    assert used["cpu"] <= 0.25 * used["wall"] * 1.2 + 0.05, used


def test_by_default_a_step_gets_at_most_one_core() -> None:
    used = run(SPIN_TWO, {"seconds": 1.5}, timeout=20)
    assert used["wall"] >= 1.5
    assert used["cpu"] <= 1.0 * used["wall"] * 1.2 + 0.05, used


def test_a_live_sandbox_has_its_cpu_limits_in_its_cgroup() -> None:
    sandbox = host.Sandbox.start()
    try:
        group = sandbox.cgroup
        if group.version == 1:
            assert (group.cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"
            assert (group.cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "100000"
            assert (group.cpu_dir / "cpu.shares").read_text().strip() == str(cgroups.CPU_SHARES)
        else:
            assert (group.cpu_dir / "cpu.max").read_text().split() == ["100000", "100000"]
            assert (group.cpu_dir / "cpu.weight").read_text().strip() == str(cgroups.CPU_WEIGHT)
        assert str(group.cpu_dir / "cgroup.procs") in group.procs_files
    finally:
        sandbox.close()


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A delegated cgroup v2 directory as the kernel shows one, named by FLOWDECK_SANDBOX_CGROUP."""
    parent = tmp_path / "flowdeck.scope"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (parent / "cgroup.subtree_control").write_text("\n")
    monkeypatch.setenv("FLOWDECK_SANDBOX_CGROUP", str(parent))
    return parent


def _only_child(parent: Path) -> Path:
    (child,) = [path for path in parent.iterdir() if path.is_dir()]
    return child


def test_cgroup_v2_writes_every_limit(fake_v2: Path) -> None:
    group = cgroups.SandboxCgroup.create(max_processes=64, memory_mb=256, cpus=1.0)
    directory = _only_child(fake_v2)
    assert group.version == 2 and directory.name.startswith("flowdeck-sandbox-")
    assert (fake_v2 / "cgroup.subtree_control").read_text().split() == ["+cpu", "+memory", "+pids"]
    assert (directory / "pids.max").read_text() == "64"
    assert (directory / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (directory / "cpu.max").read_text() == "100000 100000"
    assert (directory / "cpu.weight").read_text() == str(cgroups.CPU_WEIGHT)
    assert group.procs_files == [str(directory / "cgroup.procs")]
    # the kernel makes memory.swap.max where swap is accounted; the call's limit sets it to 0
    (directory / "memory.swap.max").write_text("max")
    group.limit_memory(128)
    assert (directory / "memory.max").read_text() == str(128 * 1024 * 1024)
    assert (directory / "memory.swap.max").read_text() == "0"


def test_cgroup_v2_cpu_quota_follows_the_setting(fake_v2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_SANDBOX_CPUS", "0.25")
    cgroups.SandboxCgroup.create(max_processes=8, memory_mb=64)
    assert (_only_child(fake_v2) / "cpu.max").read_text() == "25000 100000"


def test_cgroup_v2_keeps_controllers_already_delegated(fake_v2: Path) -> None:
    (fake_v2 / "cgroup.subtree_control").write_text("memory pids\n")
    cgroups.SandboxCgroup.create(max_processes=8, memory_mb=64, cpus=1.0)
    assert (fake_v2 / "cgroup.subtree_control").read_text() == "+cpu"  # what the kernel is asked to add


def test_cgroup_v2_without_the_cpu_controller_is_refused(fake_v2: Path) -> None:
    (fake_v2 / "cgroup.controllers").write_text("memory pids\n")
    with pytest.raises(cgroups.CgroupUnavailable, match="cpu") as caught:
        cgroups.SandboxCgroup.create(max_processes=8, memory_mb=64, cpus=1.0)
    assert "FLOWDECK_SANDBOX_CGROUP" in str(caught.value)
    assert [path for path in fake_v2.iterdir() if path.is_dir()] == []


def test_a_directory_that_is_no_cgroup_v2_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_SANDBOX_CGROUP", str(tmp_path))
    with pytest.raises(cgroups.CgroupUnavailable, match="cgroup.controllers"):
        cgroups.SandboxCgroup.create(max_processes=8, memory_mb=64, cpus=1.0)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "0.001", "nan", "inf", "100000"])
def test_a_cpu_setting_out_of_bounds_is_refused_by_name(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_SANDBOX_CPUS", value)
    with pytest.raises(cgroups.CgroupUnavailable, match="FLOWDECK_SANDBOX_CPUS"):
        cgroups.SandboxCgroup.create(max_processes=8, memory_mb=64)
