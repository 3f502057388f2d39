"""Attacks from inside a code step on the engine's secrets and files (issue 12).

Each test is an attack that worked before the sandbox had namespaces: the engine's
environment read through /proc, FLOWDECK_HOME's files read, files written outside the
sandbox, the engine's uid, privileges regained through ctypes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_calls import processes_named, run

from flowdeck.runtime.sandbox import host, launcher
from flowdeck.settings import sandbox_bwrap

CANARY = "canary-5e1f-not-for-code-steps"


@pytest.fixture
def canary_in_engine(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the engine's environment, seen by every sandbox started from now on."""
    monkeypatch.setenv("FLOWDECK_API_TOKENS", CANARY)
    monkeypatch.setenv("FLOWDECK_CANARY_SECRET", CANARY)
    host.pool.close()
    return CANARY


def test_proc_environ_of_other_processes_shows_no_engine_secret(canary_in_engine: str) -> None:
    source = """
    import os
    def run(ctx):
        seen = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            for name in ("environ", "cmdline"):
                try:
                    with open(f"/proc/{pid}/{name}", "rb") as f:
                        seen[f"{pid}/{name}"] = f.read().decode(errors="replace")
                except OSError:
                    pass
        return {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "ppid": os.getppid(), "seen": seen}
    """
    found = run(source)
    assert not [key for key, text in found["seen"].items() if canary_in_engine in text]
    assert os.getpid() not in found["pids"]
    # its own PID namespace: the sandbox's init, the code, nothing else of this machine
    assert max(found["pids"]) < 10, found["pids"]
    assert found["ppid"] == 1


def test_files_of_flowdeck_home_are_not_there(tmp_path: Path) -> None:
    home = tmp_path / "flowdeck-home"
    (home / "prefect" / "storage").mkdir(parents=True)
    for name in ("api_tokens", "prefect/prefect.db", "prefect/storage/result-1"):
        (home / name).write_text(CANARY)
        (home / name).chmod(0o644)
    for directory in (tmp_path, home, home / "prefect", home / "prefect" / "storage"):
        directory.chmod(0o755)
    source = """
    import os
    def run(ctx):
        read, listed = {}, {}
        for path in ctx["files"]:
            try:
                with open(path) as f:
                    read[path] = f.read()
            except OSError as error:
                read[path] = type(error).__name__
        for path in [ctx["home"], os.path.expanduser("~/.flowdeck"), "/root/.flowdeck"]:
            try:
                listed[path] = os.listdir(path)
            except OSError as error:
                listed[path] = type(error).__name__
        return {"read": read, "listed": listed}
    """
    files = [
        str(home / "api_tokens"),
        str(home / "prefect" / "prefect.db"),
        str(home / "prefect" / "storage" / "result-1"),
    ]
    found = run(source, {"files": files, "home": str(home)})
    assert CANARY not in str(found["read"]), found["read"]
    assert all(isinstance(answer, str) and answer.endswith("Error") for answer in found["listed"].values()), found
    # the suite's own FLOWDECK_HOME (a real Prefect database and results may be in it)
    found = run(source, {"files": [os.environ["FLOWDECK_HOME"] + "/api_tokens"], "home": os.environ["FLOWDECK_HOME"]})
    assert found["listed"][os.environ["FLOWDECK_HOME"]] in ("FileNotFoundError", "PermissionError")


def test_writes_outside_the_private_temp_dir_do_not_reach_the_host(tmp_path: Path) -> None:
    target = tmp_path / "open-to-all"
    target.mkdir()
    target.chmod(0o777)
    tmp_path.chmod(0o755)
    source = """
    import os
    def run(ctx):
        outcome = {}
        for path in [ctx["target"] + "/planted", "/planted", "/usr/planted", os.path.dirname(ctx["target"]) + "/x"]:
            try:
                with open(path, "w") as f:
                    f.write("planted")
                outcome[path] = "written"
            except OSError as error:
                outcome[path] = type(error).__name__
        with open("/tmp/scratch", "w") as f:  # the private temp dir works
            f.write("ok")
        return outcome
    """
    outcome = run(source, {"target": str(target)})
    assert "written" not in outcome.values(), outcome
    assert list(target.iterdir()) == []


def test_code_runs_as_an_unprivileged_uid_also_outside_its_namespace() -> None:
    """Checked from the host: inside a user namespace any uid can look like anything."""
    source = """
    import subprocess, time
    def run(ctx):
        subprocess.Popen(["sleep", "34.5"])
        time.sleep(1.5)
        with open("/proc/self/status") as f:
            return [line.split()[1] for line in f if line.startswith(("CapEff", "CapPrm", "CapBnd"))]
    """
    outside: list[str] = []

    def look() -> None:
        deadline = time.monotonic() + 5
        while not outside and time.monotonic() < deadline:
            for pid in processes_named(b"34.5"):
                with open(f"/proc/{pid}/status") as status:
                    outside.extend(line.split()[1] for line in status if line.startswith("Uid:"))
            time.sleep(0.05)

    watcher = threading.Thread(target=look)
    watcher.start()
    caps = run(source)
    watcher.join()
    assert outside and outside[0] != "0", outside  # the real uid on this machine
    assert set(caps) == {"0000000000000000"}, caps


def test_ctypes_cannot_regain_privileges() -> None:
    source = """
    import ctypes, os
    def run(ctx):
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
        results = {
            "setuid0": libc.setuid(0),
            "unshare_user": libc.unshare(CLONE_NEWUSER),
            "unshare_mount": libc.unshare(CLONE_NEWNS),
            "mount": libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
        }
        results["uid"] = os.getuid()
        return results
    """
    results = run(source)
    assert results["uid"] != 0
    assert {key: value for key, value in results.items() if key != "uid" and value == 0} == {}, results


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    """A directory every uid may walk into (pytest's tmp_path is under a 0700 one)."""
    directory = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="flowdeck-uid-probe-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def _sandboxed_read(launch_argv: list[str], secret: Path) -> subprocess.CompletedProcess[str]:
    """Run a launcher argv with `secret` bound at /secret, reading it."""
    end = launch_argv.index("--remount-ro")  # while the sandbox's root is still writable
    argv = launch_argv[:end] + ["--ro-bind", str(secret), "/secret"] + launch_argv[end:]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid layer is the root engine's")
def test_a_root_only_file_stays_closed_even_when_it_is_in_view(traversable_dir: Path) -> None:
    """The uid layer on its own (the mount namespace normally hides such files anyway):
    flowdeck's launcher (setpriv to 65534, then bwrap) cannot read a root-only file even
    when it is bound in; bwrap's own --uid under a user namespace made by root could."""
    secret = traversable_dir / "api_tokens"
    secret.write_text(CANARY)
    secret.chmod(0o600)
    read = ["-I", "-S", "-c", "print(open('/secret').read())"]
    ours = launcher.command(host.CHILD_PROGRAM, [], host.TMP_BYTES, extra=read).argv
    refused = _sandboxed_read(ours, secret)
    assert CANARY not in refused.stdout and "PermissionError" in refused.stderr, (refused.stdout, refused.stderr)
    # the tempting alternative: bwrap run by root, --uid 65534 in a new user namespace
    start = ours.index(sandbox_bwrap())
    as_root = [ours[start], "--uid", "65534", "--gid", "65534", *ours[start + 1 :]]
    as_root = [
        part.replace("/run/python0", sys.base_prefix).replace("/run/child.py", host.CHILD_PROGRAM) for part in as_root
    ]
    leaked = _sandboxed_read(as_root, secret)
    assert CANARY in leaked.stdout, (leaked.stdout, leaked.stderr)
