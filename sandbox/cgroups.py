"""A memory cgroup per run, and a CPU quota, where the host lets the server make them.

`RLIMIT_DATA` stops heap and private-mapping bombs, but not shared memory
(`mmap.mmap(-1, n)`) or a tmpfs full of files. A cgroup charges all of it.
`RLIMIT_CPU` bounds each process's CPU time, not how many cores a run's
threads and processes take at once: a CPU quota (cgroup v1 `cpu.cfs_quota_us`,
v2 `cpu.max`) holds a run to `Limits.cpus` cores, so one run can't take
every core from the others.

The pool makes one folder for itself per controller (`CgroupBase.create`:
one under v2, `memory/` and `cpu/` under v1), binds them into the
template's view, and each supervisor makes a child folder for its run, sets
the limits, lets the run join them, and removes them when the run is gone.
Where none of this is possible (no root, no memory controller) runs keep
their rlimits and `/api/health` says so; a host with a memory controller but
no CPU controller gets the memory cgroup alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000  # the kernel's default period: the quota is cores x this


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class CgroupBase:
    """The pool's own folders: memory (always) and CPU (where the host has the controller)."""

    def __init__(self, path: Path, version: int, cpu_path: Path | None = None) -> None:
        self.path, self.version, self.cpu_path = path, version, cpu_path

    @property
    def folders(self) -> list[str]:
        """What the template's view must bind for its supervisors to make runs' cgroups."""
        return [str(p) for p in dict.fromkeys((self.path, self.cpu_path)) if p is not None]

    @classmethod
    def create(cls, name: str | None = None, root: Path = CGROUP_ROOT) -> CgroupBase | None:
        if os.getuid() != 0:
            return None
        name = name or f"sidebyside-{os.getpid()}"
        made = None
        controllers = root / "cgroup.controllers"
        if controllers.exists() and "memory" in (available := controllers.read_text().split()):
            made = cls._create_v2(root / name, "cpu" in available)
        if made is None and (root / "memory" / "memory.limit_in_bytes").exists():
            made = cls._create_v1(root / "memory" / name, root / "cpu" / name)
        return made

    @classmethod
    def _create_v2(cls, path: Path, has_cpu: bool) -> CgroupBase | None:
        _sweep_stale(path.parent)
        try:
            path.mkdir(exist_ok=True)
            _write(path / "cgroup.subtree_control", "+memory")
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        try:
            if has_cpu:
                _write(path / "cgroup.subtree_control", "+cpu")
        except OSError:
            has_cpu = False  # the parent doesn't delegate it: memory alone
        return cls(path, 2, path if has_cpu else None)

    @classmethod
    def _create_v1(cls, memory: Path, cpu: Path) -> CgroupBase | None:
        _sweep_stale(memory.parent)
        try:
            memory.mkdir(exist_ok=True)
        except OSError:
            return None
        cpu_path: Path | None = None
        if (cpu.parent / "cpu.cfs_quota_us").exists():
            _sweep_stale(cpu.parent)
            with contextlib.suppress(OSError):
                cpu.mkdir(exist_ok=True)
                cpu_path = cpu
        return cls(memory, 1, cpu_path)

    def remove(self) -> None:
        for folder in (self.path, self.cpu_path):
            if folder is not None:
                _remove_tree(folder)


def _remove_tree(path: Path) -> None:
    for child in path.glob("run-*"):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def _sweep_stale(parent: Path) -> None:
    """Remove what pools of dead servers left behind (a killed server can't clean up)."""
    for stale in parent.glob("sidebyside-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _remove_tree(stale)


class RunCgroup:
    """The cgroup(s) of one run, made and removed by its supervisor."""

    def __init__(self, base: str, version: int, name: str, memory_mb: int,
                 cpu_base: str | None = None) -> None:
        self.version = version
        # Named by the pool, unique for the server's life: a pid could repeat
        # after a template restart and meet a folder a dead run left behind.
        self.path = Path(base) / f"run-{name}"
        self.cpu_path = Path(cpu_base) / f"run-{name}" if cpu_base else None
        for folder in self.folders:
            if folder.exists():
                with contextlib.suppress(OSError):
                    folder.rmdir()
            folder.mkdir(exist_ok=True)
        limit = str(memory_mb * 1024 * 1024)
        if version == 2:
            _write(self.path / "memory.max", limit)
            with contextlib.suppress(OSError):
                _write(self.path / "memory.swap.max", "0")
        else:
            _write(self.path / "memory.limit_in_bytes", limit)

    def limit_cpu(self, cpus: float) -> None:
        """Set when the run's code arrives: the spare warmed up unthrottled (and niced)."""
        if self.cpu_path is None:
            return
        quota = max(1000, int(cpus * CPU_PERIOD_US))  # the kernel's floor is 1 ms
        if self.version == 2:
            _write(self.cpu_path / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            _write(self.cpu_path / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(self.cpu_path / "cpu.cfs_quota_us", str(quota))

    @property
    def folders(self) -> list[Path]:
        return list(dict.fromkeys(p for p in (self.path, self.cpu_path) if p is not None))

    def join(self) -> None:
        """Called by the run itself, while it still may: it moves itself in."""
        for folder in self.folders:
            _write(folder / "cgroup.procs", "0")

    def oom_killed(self) -> bool:
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (self.path / events).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def remove(self) -> None:
        for folder in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()
