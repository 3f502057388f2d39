"""The command line that starts one isolated sandbox: bubblewrap, inside a fresh cgroup, as
an unprivileged uid. Also the check that this host can do it at all.

What each part is for (docs/security.md has the threat model):
- bubblewrap (`bwrap`, the tool Flatpak uses) unshares the user, PID, mount, network, IPC,
  UTS and cgroup namespaces: the code sees its own processes only (its parent is the
  sandbox's init, pid 1), has a loopback of its own (no route to Prefect or anything else on
  127.0.0.1), and a root file system that holds only /usr, the interpreter's prefix and the
  child program, read-only, with a private tmpfs /tmp, a fresh /proc and a minimal /dev.
  `--disable-userns` stops it from making namespaces of its own, `--die-with-parent` and the
  PID namespace take every process it started down with it, capabilities are dropped.
- The uid: run as root, the engine drops to 65534 (nobody) with `setpriv` before bwrap, so
  the sandbox's uid outside its user namespace is 65534 too. (bwrap's own `--uid` under a
  user namespace made by root maps the sandbox to uid 0 outside: host files of root stay
  readable. Not used.) A non-root engine runs bwrap as itself: the mount namespace hides its
  files. Either way no file of FLOWDECK_HOME is in the sandbox's view.
- The interpreter may live where uid 65534 cannot walk (/root/.pyenv): as root, the
  launcher first enters a private mount namespace (`unshare --mount`, invisible to the host),
  mounts a tmpfs over /run there and binds the prefix and the child program into it; bwrap
  then binds them from /run to their own paths.
- The seccomp filter (`seccomp.py`): bwrap reads the compiled program from an inherited
  pipe (`--seccomp FD`) and loads it right before it execs the interpreter.
- The cgroup: the launcher's shell writes its own pid into the sandbox's cgroup(s) before it
  execs anything, so the whole tree is counted from the first instruction on.
The whole chain (sh, unshare, setpriv, bwrap) gets an empty environment: none of the
engine's variables reach even the sandbox's init.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flowdeck.errors import StepError
from flowdeck.runtime.sandbox import seccomp
from flowdeck.settings import sandbox_bwrap

__all__ = ["CHILD_IN_SANDBOX", "SANDBOX_ENV", "SandboxUnavailable", "Launch", "command", "ensure_available"]

SANDBOX_UID = 65534  # nobody
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp"}
CHILD_IN_SANDBOX = "/flowdeck/child.py"
_STAGE = "/run"  # overmounted in the launcher's private mount namespace only
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`) "
    "or set FLOWDECK_SANDBOX_BWRAP to its path"
)

# $0: a name. Then: cgroup.procs files, "--", (source, name) pairs to stage, "--", the command.
_SCRIPT = r"""
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
if [ "$1" != -- ]; then
  mount -t tmpfs -o mode=0755,size=64k flowdeck-stage /run || exit 125
  while [ "$1" != -- ]; do
    if [ -d "$1" ]; then mkdir "/run/$2"; else : > "/run/$2"; fi
    mount --bind "$1" "/run/$2" || exit 125
    shift 2
  done
fi
shift
exec "$@"
"""


class SandboxUnavailable(StepError):
    """This host cannot isolate code steps; the message names what is missing."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()  # the seccomp filter's pipe: inherited down to bwrap


def _interpreter() -> tuple[str, list[str]]:
    """(the real interpreter binary, the directories it needs: its standard library's prefix,
    and the binary's own prefix when it is elsewhere, as in a venv made with --copies)."""
    executable = os.path.realpath(sys.executable)
    prefixes = [os.path.realpath(sys.base_prefix)]
    if not executable.startswith(prefixes[0] + os.sep):
        prefixes.append(os.path.dirname(os.path.dirname(executable)))
    return executable, [prefix for prefix in prefixes if not prefix.startswith("/usr/")]  # /usr is bound anyway


def _root_links() -> list[str]:
    """/bin, /lib, ...: symlinks into /usr on a merged-/usr system, else bound directories."""
    arguments: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    return arguments


def command(
    child_program: str,
    procs_files: list[str],
    tmp_bytes: int,
    extra: list[str] | None = None,
    *,
    seccomp_fd: int | None = None,
) -> Launch:
    """The argv that starts `python -I -S -B child.py` isolated (or `extra` instead of the
    child program's arguments, for the host check), under the seccomp filter read from
    `seccomp_fd` (`seccomp.filter_fd()`; every sandbox of the engine has one, only tests of
    the other layers on their own leave it out)."""
    executable, prefixes = _interpreter()
    as_root = os.geteuid() == 0
    staged: list[tuple[str, str]] = []
    binds: list[str] = []
    needed = [(prefix, f"python{index}", prefix) for index, prefix in enumerate(prefixes)]
    for source, name, target in [*needed, (child_program, "child.py", CHILD_IN_SANDBOX)]:
        if as_root:
            staged.append((source, name))
            source = f"{_STAGE}/{name}"
        binds += ["--ro-bind", source, target]
    bwrap = [
        sandbox_bwrap(),
        "--unshare-all",  # pid, net, ipc, uts, cgroup (and user if it can: made sure of below)
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
        *[part for key, value in SANDBOX_ENV.items() for part in ("--setenv", key, value)],
        "--ro-bind",
        "/usr",
        "/usr",
        *_root_links(),
        *binds,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--remount-ro",
        "/",
        "--chdir",
        "/tmp",
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "--",
        executable,
        *(extra if extra is not None else ["-I", "-S", "-B", CHILD_IN_SANDBOX]),
    ]
    drop = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--no-new-privs"]
    inner = [*(drop if as_root else []), *bwrap]
    stage = [part for pair in staged for part in pair]
    script = ["sh", "-c", _SCRIPT, "flowdeck-sandbox", *procs_files, "--", *stage, "--", *inner]
    argv = ["unshare", "--mount", "--propagation", "private", *script] if as_root else script
    return Launch(argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, () if seccomp_fd is None else (seccomp_fd,))


_checked: set[tuple[str, int]] = set()  # (bwrap, euid) already proven to work in this process


def ensure_available(child_program: str, tmp_bytes: int) -> None:
    """Raise SandboxUnavailable, naming what is missing, unless a sandbox really starts here.

    Checked once per process (per bwrap setting) by starting one: a bwrap that exists but
    cannot make namespaces (no user namespaces, a seccomp profile of a container) is
    refused as clearly as one that is not installed. Never a silent downgrade.
    """
    bwrap = sandbox_bwrap()
    key = (bwrap, os.geteuid())
    if key in _checked:
        return
    if shutil.which(bwrap) is None:
        raise SandboxUnavailable(f"code steps cannot run here: bubblewrap was not found at '{bwrap}'; {INSTALL_HINT}")
    tools = ["sh", "unshare", "setpriv"] if os.geteuid() == 0 else ["sh"]
    missing = [tool for tool in tools if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing:
        raise SandboxUnavailable(
            f"code steps cannot run here: {', '.join(missing)} not found (Debian: `apt-get install util-linux`)"
        )
    from flowdeck.runtime.sandbox.cgroups import CgroupUnavailable, SandboxCgroup

    try:
        seccomp_fd = seccomp.filter_fd()
    except seccomp.SeccompUnavailable as error:
        raise SandboxUnavailable(f"code steps cannot run here: {error}") from None
    try:
        cgroup = SandboxCgroup.create(max_processes=16, memory_mb=64)
    except CgroupUnavailable as error:
        os.close(seccomp_fd)
        raise SandboxUnavailable(f"this host cannot isolate code steps: no cgroup for their limits ({error})") from None
    try:
        launch = command(
            child_program, cgroup.procs_files, tmp_bytes, extra=["-I", "-S", "-c", "pass"], seccomp_fd=seccomp_fd
        )
        try:
            done = subprocess.run(
                launch.argv, env=launch.env, capture_output=True, timeout=30, pass_fds=launch.pass_fds
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailable(f"this host cannot isolate code steps: {bwrap} did not start ({error})") from None
    finally:
        os.close(seccomp_fd)
        cgroup.remove()
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise SandboxUnavailable(
            f"this host cannot isolate code steps: {bwrap} could not start a sandbox ({said[0]}); it needs "
            "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), "
            "seccomp filters (a kernel with CONFIG_SECCOMP_FILTER, bubblewrap 0.3 or later) "
            f"and, as root, util-linux's unshare and setpriv; {INSTALL_HINT}"
        )
    _checked.add(key)
