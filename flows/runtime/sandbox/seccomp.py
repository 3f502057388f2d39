"""The system-call filter of every sandbox: what the kernel refuses a code step outright.

Namespaces, an unprivileged uid and dropped capabilities already make most of these calls
fail; the filter makes them fail before the kernel code behind them runs at all, so a bug
in that code (user namespaces, keyrings, bpf, perf, io_uring: where kernel exploits come
from) is out of reach, and the calls that namespaces and capabilities let through
(ptrace of the sandbox's init, the per-uid key quota, ioctl TIOCSTI) are closed too.

The policy (modelled on Docker's default profile, for what an unprivileged sandboxed Python
never needs): default allow, and EPERM for the denylist below. Built with libseccomp
(through `pyseccomp`, a ctypes binding with the official bindings' API), never by hand:
libseccomp also emits the architecture check, so a call through another syscall table
(the i386 `int 0x80` one, or x32's numbers on x86_64), where the denylist's numbers mean
something else, gets EPERM too. Compiled once per process; bubblewrap loads it
(`--seccomp FD`) right before it execs the interpreter, after setting no_new_privs.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

__all__ = ["DENIED", "SeccompUnavailable", "filter_fd", "program"]

# Refused with EPERM whatever their arguments.
DENIED = (
    # tracing and reading other processes' memory (a step could stop its sandbox's init)
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    # mounts and new namespaces (with clone's namespace flags below)
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    # kernel keyrings: quotas are per uid, shared by every sandbox (uid 65534)
    "keyctl",
    "add_key",
    "request_key",
    # kernel attack surface an interpreter has no use for
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "lookup_dcookie",
    # the machine's own state
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "vhangup",
    "syslog",
    "nfsservctl",
    # file handles open any inode of a file system, past the mount view
    "open_by_handle_at",
    "name_to_handle_at",
    # obsolete
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
)
# clone with any of these flags makes a namespace: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
# NEWUSER, NEWPID, NEWNET (Docker's mask 0x7E020000; CLONE_NEWTIME exists for clone3 only)
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
# ioctls that push input into a terminal: the engine's, if the sandbox ever had one
TERMINAL_INJECTION = (0x5412, 0x541C)  # TIOCSTI, TIOCLINUX
DEFAULT_PERSONALITY = 0  # PER_LINUX; anything else (no ASLR, READ_IMPLIES_EXEC, ...) is refused
_LOW_32_BITS = 0xFFFFFFFF  # the kernel reads ioctl's command as 32 bits: so does the filter

_lock = threading.Lock()
_compiled: bytes | None = None


class SeccompUnavailable(Exception):
    """The filter cannot be built here; the message names what to install."""


def _binding() -> Any:
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except ImportError:
        raise SeccompUnavailable(
            "the seccomp filter cannot be built: the Python package pyseccomp is not installed "
            "(`pip install pyseccomp`, a dependency of flowdeck)"
        ) from None
    except (OSError, RuntimeError) as error:  # it loads libseccomp.so.2 as it is imported
        raise SeccompUnavailable(
            f"the seccomp filter cannot be built: libseccomp was not found ({error}); install it "
            "(Debian/Ubuntu: `apt-get install libseccomp2`; Fedora: `dnf install libseccomp`)"
        ) from None
    return pyseccomp


def _build() -> bytes:
    seccomp = _binding()
    refuse, unsupported = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # only the native architecture is in the filter (libseccomp's default); the rest is refused
    rules.set_attr(seccomp.Attr.ACT_BADARCH, refuse)
    for name in DENIED:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number == -1:  # __NR_SCMP_ERROR: a name libseccomp does not know at all
            raise SeccompUnavailable(f"the seccomp filter cannot be built: libseccomp does not know '{name}'")
        if number >= 0:  # negative: a syscall of other architectures only
            rules.add_rule(refuse, number)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, out of the filter's sight: ENOSYS makes glibc fall
    # back to clone, whose flags are checked above (Docker does the same)
    rules.add_rule(unsupported, "clone3")
    for request in TERMINAL_INJECTION:
        rules.add_rule(refuse, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, _LOW_32_BITS, request))
    rules.add_rule(refuse, "personality", seccomp.Arg(0, seccomp.NE, DEFAULT_PERSONALITY))
    descriptor = os.memfd_create("flowdeck-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(descriptor, "w+b") as exported:
        rules.export_bpf(exported)
        exported.seek(0)
        return exported.read()


def program() -> bytes:
    """The compiled BPF program (built once per process); SeccompUnavailable if it cannot be."""
    global _compiled
    with _lock:
        if _compiled is None:
            try:
                _compiled = _build()
            except OSError as error:  # libseccomp refused a rule
                raise SeccompUnavailable(f"the seccomp filter cannot be built: libseccomp said {error}") from None
        return _compiled


def filter_fd() -> int:
    """A pipe's read end holding the program, for `bwrap --seccomp FD`, inherited by the
    process that starts bwrap (pass_fds); the caller closes it once that process started.
    A pipe per sandbox: each bwrap reads its own copy to the end."""
    compiled = program()
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, compiled)  # BPF_MAXINSNS * 8 bytes = 32 KiB: within a pipe's buffer
    finally:
        os.close(write_end)
    return read_end
