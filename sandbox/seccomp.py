"""The run's seccomp filter: the system calls a snippet has no business making.

Compiled once, in the template (`prepare`), by libseccomp into plain BPF;
loaded by every run as the last step of its fence (`install`), once
`no_new_privs` is set. A denylist with argument filters: what is refused,
and why, is in the constants below.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile

from sandbox.libc import check, libc
from sandbox.namespaces import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Syscalls a snippet has no business making, whatever their arguments. The
# namespaces and the unprivileged uid already stop most of them; seccomp
# makes sure, and closes kernel surface that is reachable without privilege
# (new user namespaces, the new mount API, io_uring, bpf, perf, userfaultfd).
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module",
    "delete_module", "swapon", "swapoff", "acct", "open_by_handle_at",
    "name_to_handle_at", "settimeofday", "clock_settime", "adjtimex", "syslog",
    "iopl", "ioperm", "quotactl", "lookup_dcookie", "fanotify_init",
)
# clone3 passes its flags in a struct seccomp can't read: say it doesn't
# exist (ENOSYS), and glibc falls back to clone, whose flags it can.
ENOSYS_SYSCALLS = ("clone3",)
# clone with any of these flags would make a new namespace (a new user
# namespace hands its creator every capability inside it).
NAMESPACE_FLAGS = (CLONE_NEWNS, 0x02000000, 0x04000000, CLONE_NEWIPC, 0x10000000,
                   CLONE_NEWPID, CLONE_NEWNET)  # ns, cgroup, uts, ipc, user, pid, net
# socket() and socketpair() families a snippet may use: local and IP (the
# run's network namespace holds only its own loopback anyway).
SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6
# And socket() for netlink's routing protocol only, which is what
# getifaddrs() opens to list interfaces (torch.distributed's gloo asks). Any
# process may open it outside a sandbox; with no capability the run can only
# read its own namespace's `lo`, not change it. Every other netlink protocol
# (netfilter, xfrm, audit, generic...) stays refused.
AF_NETLINK, NETLINK_ROUTE = 16, 0


class _ArgCmp(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_NE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ = 1, 4, 5, 7


def _errno_action(errno: int) -> int:
    return 0x00050000 | errno


def _seccomp_rules() -> list[tuple[str, int, list[tuple[int, int, int, int]]]]:
    """(syscall, action, [(arg, op, a, b), ...]): every rule the run's filter holds."""
    eperm, enosys = _errno_action(1), _errno_action(38)
    rules: list[tuple[str, int, list[tuple[int, int, int, int]]]] = []
    rules += [(name, eperm, []) for name in DENIED_SYSCALLS]
    rules += [(name, enosys, []) for name in ENOSYS_SYSCALLS]
    rules += [("clone", eperm, [(0, SCMP_CMP_MASKED_EQ, flag, flag)]) for flag in NAMESPACE_FLAGS]
    # Families are small numbers: refuse 0, every gap below the largest allowed, and above it.
    for name, allowed in (("socket", {*SOCKET_FAMILIES, AF_NETLINK}),
                          ("socketpair", set(SOCKET_FAMILIES))):
        refused = [f for f in range(max(allowed)) if f not in allowed]
        rules += [(name, eperm, [(0, SCMP_CMP_EQ, f, 0)]) for f in refused]
        rules.append((name, eperm, [(0, SCMP_CMP_GE, max(allowed) + 1, 0)]))
    rules.append(("socket", eperm, [(0, SCMP_CMP_EQ, AF_NETLINK, 0),
                                    (2, SCMP_CMP_NE, NETLINK_ROUTE, 0)]))
    return rules


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program() -> bytes:
    """The run's filter as raw BPF (`struct sock_filter`s), compiled by libseccomp.

    Compiled once, in the template (`prepare`), and loaded by every run: a
    run then pays ~0.1 ms for its filter instead of ~5 ms.
    """
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name, action, cmps in _seccomp_rules():
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a syscall on this architecture
                continue
            array = (_ArgCmp * max(len(cmps), 1))(*[_ArgCmp(*c) for c in cmps])
            ret = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
            if ret != 0:
                raise OSError(-ret, f"seccomp rule for {name}: {os.strerror(-ret)}")
        with tempfile.TemporaryFile() as out:
            ret = lib.seccomp_export_bpf(ctx, out.fileno())
            if ret != 0:
                raise OSError(-ret, f"seccomp_export_bpf: {os.strerror(-ret)}")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(ctx)


_program: bytes | None = None


def prepare() -> None:
    """Work every run would otherwise repeat: done once in the template, before it forks."""
    global _program
    _program = seccomp_program()


def install() -> None:
    """Load the filter; `no_new_privs` must be set already."""
    program = _program if _program is not None else seccomp_program()
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
           "seccomp")
