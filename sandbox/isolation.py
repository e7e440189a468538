"""Kernel primitives that fence one run in: namespaces, mounts, uid, rlimits, seccomp.

Everything here is enforced by the kernel; nothing inspects the snippet's
code. The outer fence (read-only filesystem view, no network, no server
environment) comes from bubblewrap around the template (`launcher.py`);
this module adds the per-run fence inside it (`enter_run_namespaces` in the
supervisor, `confine_run` in the run itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import subprocess

from sandbox.limits import Limits

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_NOSUID = 0x2
MS_NODEV = 0x4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4

# The first uid handed to runs when the template runs as real root; slot i
# runs as RUN_UID_BASE + i, so two runs never share a uid.
RUN_UID_BASE = 61000
SCRATCH = "/tmp"

# Syscalls a snippet has no business making. The namespaces and the
# unprivileged uid already stop most of them; seccomp makes sure.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module",
    "delete_module", "swapon", "swapoff", "acct", "open_by_handle_at",
    "name_to_handle_at", "settimeofday", "clock_settime", "adjtimex", "syslog",
    "iopl", "ioperm", "quotactl", "lookup_dcookie", "fanotify_init",
)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class SandboxUnavailable(RuntimeError):
    """The host can't provide the isolation runs need."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def is_real_root() -> bool:
    """True when this process is root of the initial user namespace."""
    with open("/proc/self/uid_map") as f:
        return os.getuid() == 0 and f.read().split() == ["0", "0", "4294967295"]


def enter_run_namespaces() -> None:
    """New pid, mount, network and IPC namespaces for the run forked next."""
    _check(_libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                    flags, data.encode() if data else None),
        f"mount {target}",
    )


def confine_run(limits: Limits, slot: int) -> None:
    """Called by the run (pid 1 of its namespaces) before it touches user code."""
    os.setsid()  # its own session: kill(0, ...) reaches only the run's processes
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV, None)
    real_root = is_real_root()
    uid = RUN_UID_BASE + slot if real_root else 0
    owner = f"uid={uid},gid={uid}"
    _mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={limits.scratch_mb}m,mode=0700,{owner}")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size=16m,mode=0700,{owner}")
    os.chdir(SCRATCH)  # the fresh tmpfs, not the directory it now hides
    apply_limits(limits)
    if real_root:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from real root to a plain uid: all capabilities go
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if not real_root:
        _drop_capabilities()
    # Not dumpable: peers with the same uid can't ptrace or read /proc/<pid>/mem.
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    install_seccomp()


def apply_limits(limits: Limits) -> None:
    mib = 1024 * 1024
    for which, value in (
        (resource.RLIMIT_DATA, limits.memory_mb * mib),
        (resource.RLIMIT_AS, limits.address_space_mb * mib),
        # CPU: the hard limit leaves room for the longest timeout a request may
        # ask for; the run lowers its soft limit once it knows its request.
        (resource.RLIMIT_CPU, int(limits.max_timeout_s * 2) + 2),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def limit_cpu_seconds(seconds: int) -> None:
    """Soft CPU limit from now on: SIGXCPU when spent (SIGKILL a second later)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (min(spent + seconds, hard - 1), hard))


def _drop_capabilities() -> None:
    """In a user namespace the run stays uid 0 there, so drop every capability."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    for cap in range(64):
        _libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; unknown caps fail harmlessly
    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def install_seccomp() -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    scmp_act_allow, scmp_act_eperm = 0x7FFF0000, 0x00050000 | 1
    ctx = lib.seccomp_init(scmp_act_allow)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name in DENIED_SYSCALLS:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0:  # negative: not a syscall on this architecture
                _check(lib.seccomp_rule_add(ctx, scmp_act_eperm, nr, 0), f"seccomp {name}")
        _check(lib.seccomp_load(ctx), "seccomp_load")
    finally:
        lib.seccomp_release(ctx)


def check_sandbox() -> None:
    """Raise SandboxUnavailable with the reason when runs can't be isolated here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    if ctypes.util.find_library("seccomp") is None:
        raise SandboxUnavailable("libseccomp is missing: apt-get install libseccomp2")
    from sandbox.launcher import identity_fds, probe_command

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
