"""The per-run fence, in one sequence (`confine_run`), and whether a host can build it.

Everything here is enforced by the kernel; nothing inspects the snippet's
code. The outer fence (read-only filesystem view, no network, no server
environment) comes from bubblewrap around the template (`launcher.py`);
the per-run fence is built by the run itself, as pid 1 of the namespaces
the template made for it (`namespaces.py`), from the pieces in
`namespaces.py` (mounts, loopback), `rlimits.py` (limits) and
`seccomp.py` (the filter), plus its uid and capabilities (here).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess

from sandbox import seccomp
from sandbox.launcher import identity_fds, probe_command
from sandbox.libc import check, libc
from sandbox.limits import Limits
from sandbox.namespaces import (
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    SCRATCH,
    bring_up_loopback,
    is_real_root,
    mount,
    mount_scratch,
    seal_dev,
    set_parent_death_signal,
)
from sandbox.rlimits import ROOTLESS_TASK_HEADROOM, apply_limits, tasks_in_view

PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# The first uid handed to runs when the template runs as real root; slot i
# runs as RUN_UID_BASE + i, so two runs never share a uid.
RUN_UID_BASE = 61000


class SandboxUnavailable(RuntimeError):
    """The host can't provide the isolation runs need."""


def confine_run(limits: Limits, slot: int) -> None:
    """Called by the run (pid 1 of its namespaces) before it touches user code."""
    os.setsid()  # its own session: kill(0, ...) reaches only the run's processes
    real_root = is_real_root()
    # Rootless, every sandbox process shares one uid and RLIMIT_NPROC counts
    # them all: the run's allowance comes on top of what the others hold
    # (counted from the sandbox's /proc, before the run mounts its own), with
    # headroom for spares made later; the supervisor tightens the soft limit
    # when the run starts (`limit_processes`).
    shared = 0 if real_root else tasks_in_view() + ROOTLESS_TASK_HEADROOM
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV, None)
    bring_up_loopback()  # while the run still holds CAP_NET_ADMIN over its namespace
    uid = RUN_UID_BASE + slot if real_root else os.getuid()
    gid = RUN_UID_BASE + slot if real_root else os.getgid()
    owner = f"uid={uid},gid={gid}"
    mount_scratch(f"size={limits.scratch_mb}m,mode=0700,{owner}")
    if os.path.isdir("/dev/shm"):
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size=16m,mode=0700,{owner}")
    seal_dev()
    os.chdir(SCRATCH)  # the fresh tmpfs, not the directory it now hides
    apply_limits(limits, shared_tasks=shared)
    if real_root:
        _drop_bounding_set()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from real root to a plain uid: all capabilities go
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if not real_root:
        _drop_capabilities()
    # Not dumpable: peers with the same uid can't ptrace or read /proc/<pid>/mem.
    check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    set_parent_death_signal()  # the uid change cleared it: the run dies with its supervisor
    seccomp.install()


def _drop_bounding_set() -> None:
    """No capability can come back, not even through a setuid file (there are none)."""
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # unknown caps fail harmlessly
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _drop_capabilities() -> None:
    """In a user namespace the run keeps its uid there, so drop every capability."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _drop_bounding_set()
    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def check_sandbox() -> None:
    """Raise SandboxUnavailable with the reason when runs can't be isolated here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    if ctypes.util.find_library("seccomp") is None:
        raise SandboxUnavailable("libseccomp is missing: apt-get install libseccomp2")
    fds = identity_fds()
    try:
        probe = subprocess.run(probe_command(*fds), capture_output=True, text=True,
                               timeout=30, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    if probe.returncode != 0 or probe.stdout.strip() != "isolated":
        detail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SandboxUnavailable(
            f"bubblewrap could not create the namespaces runs need: {detail[0]}")
