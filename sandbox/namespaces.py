"""Namespaces and mounts: a run's own pid, mount, network and IPC namespaces, its /tmp.

    template ── RunNamespaces.fork(): unshare, fork, setns back
                  └── run: pid 1 of new pid, mount, net and IPC namespaces

The template makes each run's namespaces and steps back into its own
(`RunNamespaces`); rootless, it first moves into namespaces its own user
owns (`own_namespaces`). In the run, `confine_run` (isolation.py) mounts
its /proc, a private /tmp (`mount_scratch`) and turns on its own `lo`.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import struct

from sandbox.libc import check, libc

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REMOUNT = 0x20
MS_RDONLY = 0x1
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SCRATCH = "/tmp"


def is_real_root() -> bool:
    """True when this process is root of the initial user namespace."""
    with open("/proc/self/uid_map") as f:
        return os.getuid() == 0 and f.read().split() == ["0", "0", "4294967295"]


RUN_NAMESPACES = {"mnt": CLONE_NEWNS, "net": CLONE_NEWNET, "ipc": CLONE_NEWIPC,
                  "pid": CLONE_NEWPID}


def own_namespaces() -> None:
    """Rootless: move into mount, network, IPC and pid namespaces this process's user owns.

    Unprivileged bwrap runs the template in a nested user namespace, with no
    capability over the namespaces bwrap made, so `RunNamespaces` could not
    step back into them (setns: EPERM). Namespaces made here belong to the
    template's own user namespace. A new pid namespace only takes effect for
    children, so the process forks and its child goes on as the template;
    the parent waits and exits with it. Call it while single-threaded.
    """
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID), "unshare")
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    set_parent_death_signal()


class RunNamespaces:
    """Forks children into new pid, mount, network and IPC namespaces; the parent stays put.

    The parent unshares, forks (the child is pid 1 of the new pid namespace
    and lives in the new others) and joins its own namespaces again (setns),
    so one process can make many runs. The handles on its own namespaces are
    opened once; `fds` lists them, for the runs to close.
    """

    def __init__(self) -> None:
        self.own = {flag: os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
                    for name, flag in RUN_NAMESPACES.items()}
        self.fds = set(self.own.values())

    def fork(self) -> int:
        """Fork a child into new namespaces: its pid here, 0 in the child."""
        check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
        try:
            pid = os.fork()
        except BaseException:
            self._step_back()
            raise
        if pid:
            self._step_back()
        return pid

    def _step_back(self) -> None:
        for flag, fd in self.own.items():
            check(libc.setns(fd, flag), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    check(
        libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                    flags, data.encode() if data else None),
        f"mount {target}",
    )


def set_parent_death_signal() -> None:
    """SIGKILL this process when its parent dies (a uid change clears it: set it again after)."""
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")


def bring_up_loopback() -> None:
    """Turn on `lo` in the run's own network namespace.

    The namespace is the run's alone and holds no other interface, so this
    reaches nothing outside it: the run's processes may talk to each other
    over 127.0.0.1, as `torch.distributed` (gloo) and other multi-process
    code expects, and a connection to the server's port finds no listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def seal_dev() -> None:
    """The run's /dev: read-only, and no terminals.

    /dev is the template's tmpfs (bubblewrap's `--dev`), shared by every run it
    forks: rootless, its files belong to the runs' own uid, so a run could plant
    a file there (or replace `/dev/stdout`) for the next run, or fill host memory
    that no run's limit counts. Remounted read-only in the run's own mount
    namespace, it is the same for every run; `/dev/shm` stays the run's own tmpfs.
    Its devpts instance is shared by the template's runs too (`ptmxmode=666`), so
    one run could open another's terminal: an empty read-only tmpfs hides it, and
    `/dev/ptmx` (a link into it) opens nothing. Snippets need no terminal.
    """
    if os.path.isdir("/dev/pts"):
        mount("tmpfs", "/dev/pts", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
              "size=4k,mode=0555")
    mount("none", "/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def mount_scratch(options: str) -> None:
    """A fresh tmpfs on /tmp that hides nothing the run needs.

    A checkout or virtualenv under /tmp is bound into the sandbox's view
    below /tmp; the new tmpfs would hide it. Keep a handle on each such
    mount, mount the tmpfs, and bind them back (read-only, as they were).
    The folders made to hold them are made read-only too, so that a run
    can't plant a module next to the checkout that its own imports find.
    """
    kept = []
    for target in _mounts_below(SCRATCH):
        kept.append((target, os.open(target, os.O_PATH | os.O_DIRECTORY)))
    mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for target, fd in kept:
        os.makedirs(target, mode=0o755, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC, None)
        os.close(fd)
    for top in sorted({SCRATCH + "/" + t[len(SCRATCH) + 1:].split("/")[0] for t, _ in kept}):
        mount(top, top, None, MS_BIND | MS_REC, None)
        mount("none", top, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _mounts_below(top: str) -> list[str]:
    """Top-most mount points strictly below `top`, from this mount namespace's table."""
    with open("/proc/self/mountinfo") as f:
        points = sorted({_unescape(line.split()[4]) for line in f})
    below = [p for p in points if p.startswith(top.rstrip("/") + "/")]
    return [p for p in below if not any(p.startswith(q + "/") for q in below)]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
