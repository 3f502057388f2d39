"""Attacks on the kernel from inside a code step, through system calls an unprivileged
sandboxed Python never needs (issue 12): the seccomp filter bubblewrap applies refuses them
with EPERM, whatever the other layers would have said, and the step sees and reports it.

Syscall numbers are x86_64's (this machine and CI); the i386 and x32 holes exist only there.
"""

from __future__ import annotations

import errno
import platform
import subprocess
import sys
import textwrap

import pytest
from sandbox_calls import run

from flowdeck.errors import StepError

x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers")

# Each attack calls one syscall through ctypes and returns (its result, the errno's name).
ATTACKS = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)

def call(function, *arguments):
    ctypes.set_errno(0)
    result = function(*arguments)
    if result == 0 and os.getpid() != PID:  # a clone that went through: the copy leaves at once
        os._exit(0)
    return [result, errno.errorcode.get(ctypes.get_errno(), "")]

def syscall(name, *arguments):  # 64-bit arguments: ctypes passes Python ints as 32-bit C ints
    wide = [ctypes.c_long(a) if isinstance(a, int) else a for a in arguments]
    return call(libc.syscall, ctypes.c_long(SYS[name]), *wide)

PID = os.getpid()
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x00020000, 0x40000000, 17
TIOCSTI = 0x5412
KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
SYS = {"ioctl": 16, "clone": 56, "settimeofday": 164, "add_key": 248, "keyctl": 250, "perf_event_open": 298,
       "process_vm_readv": 310, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "fsopen": 430}
char = ctypes.c_char(b"x")

def run(ctx):
    return {
        "ptrace_traceme": call(libc.ptrace, 0, 0, 0, 0),
        "ptrace_attach_init": call(libc.ptrace, 16, 1, 0, 0),
        "unshare_newuser": call(libc.unshare, CLONE_NEWUSER),
        "unshare_newns": call(libc.unshare, CLONE_NEWNS),
        "clone_newuser": syscall("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
        "clone_newnet": syscall("clone", CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
        "setns": call(libc.setns, 0, 0),
        "mount": call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "umount2": call(libc.umount2, b"/tmp", 0),
        "chroot": call(libc.chroot, b"/tmp"),
        "fsopen": syscall("fsopen", b"tmpfs", 0),
        "keyctl": syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1),
        "add_key": syscall("add_key", b"user", b"flowdeck", b"x", 1, KEY_SPEC_SESSION_KEYRING),
        "ioctl_tiocsti": call(libc.ioctl, 0, TIOCSTI, ctypes.byref(char)),
        # the kernel reads ioctl's command as 32 bits: high bits must not slip past the filter
        "ioctl_tiocsti_high_bits": syscall("ioctl", 0, (1 << 32) | TIOCSTI, ctypes.byref(char)),
        "bpf": syscall("bpf", 0, 0, 0),
        "perf_event_open": syscall("perf_event_open", 0, 0, -1, -1, 0),
        "userfaultfd": syscall("userfaultfd", 0),
        "process_vm_readv": syscall("process_vm_readv", 1, 0, 0, 0, 0, 0),
        "io_uring_setup": syscall("io_uring_setup", 1, 0),
        "personality_no_aslr": call(libc.personality, 0x0040000),  # ADDR_NO_RANDOMIZE
        "syslog": call(libc.klogctl, 3, None, 0),
        "settimeofday": syscall("settimeofday", 0, 0),  # NULL, NULL: would change nothing (glibc's own crashes)
        "swapoff": call(libc.swapoff, b"/tmp"),
        "reboot": call(libc.reboot, 0),
        "acct": call(libc.acct, None),
    }
"""


@x86_64_only
def test_system_calls_a_sandboxed_python_never_needs_get_eperm() -> None:
    outcome = run(ATTACKS)
    refused = [-1, "EPERM"]
    assert {name: result for name, result in outcome.items() if result != refused} == {}


@x86_64_only
def test_the_step_reports_the_refusal() -> None:
    source = """
    import ctypes, os
    def run(ctx):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(16, 1, 0, 0) != 0:  # PTRACE_ATTACH to the sandbox's init
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        return "attached"
    """
    with pytest.raises(StepError) as caught:
        run(source, timeout=5)
    assert "PermissionError" in caught.value.message and "Operation not permitted" in caught.value.message


I386_GETPID = "b814000000cd80c3"  # mov eax, 20 (getpid in the i386 table); int 0x80; ret
FOREIGN = f"""
import ctypes, mmap, os
def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    x32 = libc.syscall(0x40000000 | 39)  # getpid through the x32 table
    x32_errno = ctypes.get_errno()
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(bytes.fromhex("{I386_GETPID}"))
    i386 = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
    return {{"x32": [x32, x32_errno], "i386": i386, "pid": os.getpid()}}
"""


@x86_64_only
def test_the_i386_and_x32_syscall_tables_are_closed() -> None:
    """Both tables number syscalls differently: a denylist of x86_64 numbers would miss them.
    Whatever arrives through them is refused with EPERM (the i386 call returns -errno)."""
    outcome = run(FOREIGN)
    assert outcome["x32"] == [-1, errno.EPERM], outcome
    assert outcome["i386"] == -errno.EPERM, outcome


def test_the_filter_is_in_force_and_ordinary_work_still_runs() -> None:
    """Seccomp mode 2 (a filter) in the step's own status; threads (glibc tries clone3,
    which gets ENOSYS so glibc falls back to clone), processes, asyncio, sockets, files."""
    source = """
    import asyncio, ctypes, json, os, socket, subprocess, tempfile, threading
    import multiprocessing
    def run(ctx):
        seen = {}
        with open("/proc/self/status") as status:
            seen["seccomp"] = next(line.split()[1] for line in status if line.startswith("Seccomp:"))
        box = []
        thread = threading.Thread(target=lambda: box.append("thread"))
        thread.start(); thread.join()
        seen["thread"] = box
        seen["subprocess"] = subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip()
        forked = multiprocessing.get_context("fork").Process(target=lambda: os._exit(7))
        forked.start(); forked.join()
        seen["multiprocessing"] = forked.exitcode
        seen["asyncio"] = asyncio.run(asyncio.sleep(0, result="slept"))
        left, right = socket.socketpair()
        left.sendall(b"ping")
        seen["socket"] = right.recv(4).decode()
        with tempfile.NamedTemporaryFile("w+") as scratch:
            scratch.write("kept"); scratch.flush(); scratch.seek(0)
            seen["file"] = scratch.read()
        libc = ctypes.CDLL(None)
        seen["personality_default"] = libc.personality(0)
        return seen
    """
    seen = run(source, timeout=20)
    assert seen == {
        "seccomp": "2",
        "thread": ["thread"],
        "subprocess": "child",
        "multiprocessing": 7,
        "asyncio": "slept",
        "socket": "ping",
        "file": "kept",
        "personality_default": 0,
    }


# A fresh engine process where libseccomp (or its binding) cannot be loaded: code steps refuse.
_WITHOUT = """
import asyncio, ctypes.util, sys
{hide}
from flowdeck.errors import StepError
from flowdeck.runtime.steps.code import run_code
try:
    asyncio.run(run_code("def run(ctx):\\n    return 'ran unfiltered'\\n", {{}}, timeout=10, memory_mb=64,
                         on_logs=lambda logs: None))
    print("RAN")
except StepError as error:
    print(error.message)
"""
_HIDE_LIBSECCOMP = """
find_library = ctypes.util.find_library
ctypes.util.find_library = lambda name: None if name == "seccomp" else find_library(name)
"""
_HIDE_BINDING = "sys.modules['pyseccomp'] = None  # import pyseccomp now raises ImportError"


@pytest.mark.parametrize(
    ("hide", "named"),
    [(_HIDE_LIBSECCOMP, ["libseccomp", "apt-get install libseccomp2"]), (_HIDE_BINDING, ["pyseccomp", "pip install"])],
    ids=["no-libseccomp", "no-binding"],
)
def test_without_libseccomp_code_steps_refuse_to_run(hide: str, named: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITHOUT.format(hide=hide))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = done.stdout.strip()
    assert done.returncode == 0, done.stderr
    assert "RAN" not in said and "seccomp" in said and "code steps cannot run here" in said, said
    for words in named:
        assert words in said, said
