"""Memory, process and CPU limits for a sandbox's whole process tree: one cgroup per sandbox.

An rlimit bounds one process; a step that forks eight children of 200 MB each gets past
`memory_mb: 256` that way, and a CPU rlimit bounds each process's seconds, not the cores
they use together. A cgroup bounds the tree: every process the sandbox starts is born in
it, and the kernel counts them together (pages of its private /tmp too).

Two kernels' interfaces behind one small class:
- cgroup v1 (separate `memory`, `pids` and `cpu` hierarchies, as on many container hosts):
  `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` where swap is accounted),
  `pids.max`, `cpu.cfs_period_us` + `cpu.cfs_quota_us` and `cpu.shares`, the OOM kills in
  `memory.oom_control`;
- cgroup v2 (one unified hierarchy, systemd hosts): `memory.max`, `memory.swap.max`,
  `pids.max`, `cpu.max` and `cpu.weight`, `memory.events`, and `cgroup.kill` for the teardown.
The CPU limits are two: a quota (at most FLOWDECK_SANDBOX_CPUS cores for the whole tree,
however many processes it starts or sessions it makes) and a weight below the default of
every other cgroup and process, so that under contention the engine is served first.
Each sandbox's cgroup is created under the engine's own cgroup (so the limits of whatever
runs the engine still apply around it), or under FLOWDECK_SANDBOX_CGROUP, a cgroup v2
directory (for a v2 host whose engine cgroup cannot delegate controllers). The launcher
writes its own pid into `cgroup.procs` before it execs anything (see `launcher.py`):
nothing escapes the count.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flowdeck.settings import sandbox_cgroup_parent, sandbox_cpus

__all__ = ["CPU_PERIOD_US", "CPU_SHARES", "CPU_WEIGHT", "CgroupUnavailable", "SandboxCgroup", "parents"]

_NAME_PREFIX = "flowdeck-sandbox-"
_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000  # the quota is counted per 100 ms, the kernel's default period
CPU_SHARES = 256  # v1: a quarter of the default 1024 of the engine (and of every other cgroup)
CPU_WEIGHT = 25  # v2: the same quarter of the default weight, 100


class CgroupUnavailable(Exception):
    """This host offers no cgroup this process may create limits in; the message says why."""


@dataclass(frozen=True)
class _Parents:
    version: int
    memory: Path
    pids: Path
    cpu: Path


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, super options) of every cgroup mount this process sees."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, _, after = line.partition(" - ")
            fstype, _source, options = (after.split() + ["", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((fstype, before.split()[4], set(options.split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under "" its v2 cgroup."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _under(mount: str, path: str) -> Path:
    candidate = Path(mount) / path.lstrip("/")
    return candidate if candidate.is_dir() else Path(mount)  # a cgroup namespace hides the path


def _named(controllers: set[str] | list[str]) -> str:
    return " and ".join(sorted(controllers))


_DELEGATED_HINT = (
    "point FLOWDECK_SANDBOX_CGROUP at a cgroup v2 that does (e.g. one made by `systemd-run --scope -p Delegate=yes`)"
)


def parents() -> _Parents:
    """Where sandbox cgroups are created; CgroupUnavailable says what is missing."""
    configured = sandbox_cgroup_parent()
    if configured:
        return _v2_parent(Path(configured))
    mounts, own = _mounts(), _own_paths()
    v1 = {name: mount for fstype, mount, options in mounts if fstype == "cgroup" for name in options}
    if "memory" in v1 and "pids" in v1:  # a v1 host: each controller has a hierarchy of its own
        missing = [name for name in _CONTROLLERS if name not in v1]
        if missing:
            raise CgroupUnavailable(
                f"no cgroup v1 hierarchy with the {_named(missing)} controller is mounted "
                f"(e.g. `mount -t cgroup -o {','.join(missing)} cgroup /sys/fs/cgroup/{missing[0]}`); "
                f"or {_DELEGATED_HINT}"
            )
        found = {name: _under(v1[name], own.get(name, "/")) for name in _CONTROLLERS}
        for directory in found.values():
            if not os.access(directory, os.W_OK):
                raise CgroupUnavailable(f"the cgroup {directory} is not writable by this process (run as root)")
        return _Parents(1, found["memory"], found["pids"], found["cpu"])
    unified = [mount for fstype, mount, _ in mounts if fstype == "cgroup2"]
    if not unified:
        raise CgroupUnavailable(f"no cgroup hierarchy with the {_named(list(_CONTROLLERS))} controllers is mounted")
    return _v2_parent(_under(unified[0], own.get("", "/")))


def _v2_parent(parent: Path) -> _Parents:
    """A cgroup v2 directory whose children get the memory, pids and cpu controllers."""
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as error:
        raise CgroupUnavailable(
            f"{parent} is not a cgroup v2 directory (no cgroup.controllers: {error.strerror}); {_DELEGATED_HINT}"
        ) from None
    absent = set(_CONTROLLERS) - available
    if absent:
        raise CgroupUnavailable(
            f"the cgroup v2 {parent} has no {_named(absent)} controller (cgroup.controllers: "
            f"{' '.join(sorted(available)) or 'none'}): its parent does not delegate it; {_DELEGATED_HINT}"
        )
    missing = set(_CONTROLLERS) - enabled
    if missing:
        try:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in sorted(missing)))
        except OSError as error:
            raise CgroupUnavailable(
                f"the cgroup v2 {parent} does not delegate the {_named(missing)} controller(s) "
                f"({error.strerror}); {_DELEGATED_HINT}"
            ) from None
    return _Parents(2, parent, parent, parent)


@dataclass
class SandboxCgroup:
    """The cgroup(s) of one sandbox: created empty with a process limit, removed after the call."""

    version: int
    directories: list[Path]
    memory_dir: Path
    pids_dir: Path
    cpu_dir: Path
    removed: bool = field(default=False)

    @classmethod
    def create(cls, max_processes: int, memory_mb: int, cpus: float | None = None) -> SandboxCgroup:
        """`cpus`: the cores the tree may use at most (FLOWDECK_SANDBOX_CPUS when not given)."""
        try:
            cores = sandbox_cpus() if cpus is None else cpus
        except ValueError as error:
            raise CgroupUnavailable(str(error)) from None
        where = parents()
        _sweep_once(where)
        name = f"{_NAME_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        memory_dir, pids_dir, cpu_dir = where.memory / name, where.pids / name, where.cpu / name
        directories = list(dict.fromkeys([memory_dir, pids_dir, cpu_dir]))  # one on v2 (or co-mounted v1)
        made: list[Path] = []
        try:
            for directory in directories:
                directory.mkdir()
                made.append(directory)
            group = cls(where.version, made, memory_dir, pids_dir, cpu_dir)
            (pids_dir / "pids.max").write_text(str(max_processes))
            group.limit_memory(memory_mb)
            group.limit_cpu(cores)
        except OSError as error:
            for directory in made:
                directory.rmdir()
            raise CgroupUnavailable(f"could not set up the cgroup {name}: {error}") from None
        return group

    @property
    def procs_files(self) -> list[str]:
        """The files the launcher writes its pid to, to enter every hierarchy."""
        return [str(directory / "cgroup.procs") for directory in self.directories]

    def limit_memory(self, memory_mb: int) -> None:
        """Everything the tree may use, swap included, in MiB (raising or lowering)."""
        limit = str(memory_mb * 1024 * 1024)
        if self.version == 2:
            (self.memory_dir / "memory.max").write_text(limit)
            swap = self.memory_dir / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
            return
        files = [self.memory_dir / "memory.limit_in_bytes"]
        memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            files.append(memsw)
        try:  # memsw may never be below the memory limit: lowering writes it second, raising first
            for path in files:
                path.write_text(limit)
        except OSError:
            for path in reversed(files):
                path.write_text(limit)

    def limit_cpu(self, cpus: float) -> None:
        """At most `cpus` cores for the tree (a quota per period), at a weight below the engine's."""
        quota = str(max(1000, round(cpus * CPU_PERIOD_US)))  # 1 ms: the kernel's smallest quota
        if self.version == 2:
            (self.cpu_dir / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            (self.cpu_dir / "cpu.weight").write_text(str(CPU_WEIGHT))
            return
        (self.cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (self.cpu_dir / "cpu.cfs_quota_us").write_text(quota)
        (self.cpu_dir / "cpu.shares").write_text(str(CPU_SHARES))

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of this tree for going over the memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _counter(self.memory_dir / name, "oom_kill") > 0

    def hit_process_limit(self) -> bool:
        return _counter(self.pids_dir / "pids.events", "max") > 0

    def kill_all(self) -> None:
        """SIGKILL every process still in the tree (the PID namespace usually took them already)."""
        if self.removed:
            return
        kill_file = self.pids_dir / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            try:
                kill_file.write_text("1")
                return
            except OSError:
                pass
        for _ in range(50):  # a process may fork while we kill: repeat until none is left
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self, wait: float = 2.0) -> bool:
        """Kill what is left and remove the cgroup(s); False if the kernel still holds one."""
        if self.removed:
            return True
        self.kill_all()
        deadline = time.monotonic() + wait
        pending = list(self.directories)
        while pending:
            try:
                pending[0].rmdir()
                pending.pop(0)
            except FileNotFoundError:
                pending.pop(0)
            except OSError:  # EBUSY while killed processes finish exiting
                if time.monotonic() > deadline:
                    return False
                self.kill_all()
                time.sleep(0.01)
        self.removed = True
        return True

    def _pids(self) -> list[int]:
        try:
            return [int(pid) for pid in (self.pids_dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []


_swept: set[tuple[int, Path]] = set()


def _sweep_once(where: _Parents) -> None:
    """Remove the cgroups of engines that died without cleaning up (kill -9), once per process.

    Their sandboxes died with them (--die-with-parent); only the empty directories remain.
    """
    for parent in {where.memory, where.pids, where.cpu}:
        if (os.getpid(), parent) in _swept:
            continue
        _swept.add((os.getpid(), parent))
        for directory in parent.glob(f"{_NAME_PREFIX}*"):
            owner = directory.name[len(_NAME_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                stale = SandboxCgroup(where.version, [directory], directory, directory, directory)
                stale.remove(wait=0.2)


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
