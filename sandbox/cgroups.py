"""A memory cgroup per run, where the host lets the server make them (v1 or v2).

`RLIMIT_DATA` stops heap and private-mapping bombs, but not shared memory
(`mmap.mmap(-1, n)`) or a tmpfs full of files. A cgroup charges all of it.

The pool makes one folder for itself (`CgroupBase.create`), binds it into
the template's view, and each supervisor makes a child folder for its run,
sets the limit, lets the run join it, and removes it when the run is gone.
Where none of this is possible (no root, no memory controller) runs keep
their rlimits and `/api/health` says so.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class CgroupBase:
    def __init__(self, path: Path, version: int) -> None:
        self.path, self.version = path, version

    @classmethod
    def create(cls, name: str | None = None) -> CgroupBase | None:
        if os.getuid() != 0:
            return None
        name = name or f"sidebyside-{os.getpid()}"
        candidates = []
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            candidates.append((CGROUP_ROOT / name, 2))
        if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists():
            candidates.append((CGROUP_ROOT / "memory" / name, 1))
        for path, version in candidates:
            _sweep_stale(path.parent)
            try:
                path.mkdir(exist_ok=True)
                if version == 2:
                    _write(path / "cgroup.subtree_control", "+memory")
                return cls(path, version)
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
        return None

    def remove(self) -> None:
        for child in self.path.glob("run-*"):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _sweep_stale(parent: Path) -> None:
    """Remove what pools of dead servers left behind (a killed server can't clean up)."""
    for stale in parent.glob("sidebyside-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            CgroupBase(stale, 0).remove()


class RunCgroup:
    """The cgroup of one run, made and removed by its supervisor."""

    def __init__(self, base: str, version: int, name: str, memory_mb: int) -> None:
        self.version = version
        # Named by the pool, unique for the server's life: a pid could repeat
        # after a template restart and meet a folder a dead run left behind.
        self.path = Path(base) / f"run-{name}"
        if self.path.exists():
            self.remove()
        self.path.mkdir()
        limit = str(memory_mb * 1024 * 1024)
        if version == 2:
            _write(self.path / "memory.max", limit)
            with contextlib.suppress(OSError):
                _write(self.path / "memory.swap.max", "0")
        else:
            _write(self.path / "memory.limit_in_bytes", limit)

    def join(self) -> None:
        """Called by the run itself, while it still may: it moves itself in."""
        _write(self.path / "cgroup.procs", "0")

    def oom_killed(self) -> bool:
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (self.path / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()
