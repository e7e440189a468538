"""Memory cgroups and CPU quotas per run (sandbox/cgroups.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupBase, RunCgroup
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.pool import Pool
from sandbox.protocol import RunRequest, RunStatus


def test_a_stale_run_cgroup_of_the_same_name_is_replaced() -> None:
    if os.getuid() != 0:
        pytest.skip("memory cgroups are made by a server running as root")
    base = CgroupBase.create(f"sidebyside-test-{os.getpid()}")  # not the live server's
    if base is None:
        pytest.skip("no memory controller on this host")
    try:
        stale = RunCgroup(str(base.path), base.version, "1-7", 256)  # left by a dead template
        again = RunCgroup(str(base.path), base.version, "1-7", 512)
        assert again.path == stale.path and again.path.is_dir()
        limit = "memory.max" if base.version == 2 else "memory.limit_in_bytes"
        assert int((again.path / limit).read_text()) == 512 * 1024 * 1024
        again.remove()
    finally:
        base.remove()


# ---- a CPU quota per run ------------------------------------------------------

def _v1_tree(root: Path, cpu: bool = True) -> None:
    (root / "memory").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("-1")
    if cpu:
        (root / "cpu").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text("-1")


def test_v1_hosts_get_a_cpu_folder_beside_the_memory_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.cgroups.os.getuid", lambda: 0)
    _v1_tree(tmp_path)
    base = CgroupBase.create("sidebyside-1", root=tmp_path)
    assert base is not None and base.version == 1
    assert base.folders == [str(tmp_path / "memory/sidebyside-1"),
                            str(tmp_path / "cpu/sidebyside-1")]
    run = RunCgroup(str(base.path), 1, "2-3", 256, str(base.cpu_path))
    run.limit_cpu(1.5)
    assert (tmp_path / "cpu/sidebyside-1/run-2-3/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu/sidebyside-1/run-2-3/cpu.cfs_period_us").read_text() == "100000"


def test_v1_hosts_without_the_cpu_controller_keep_the_memory_cgroup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.cgroups.os.getuid", lambda: 0)
    _v1_tree(tmp_path, cpu=False)
    base = CgroupBase.create("sidebyside-1", root=tmp_path)
    assert base is not None and base.cpu_path is None
    assert base.folders == [str(tmp_path / "memory/sidebyside-1")]
    run = RunCgroup(str(base.path), 1, "2-3", 256, None)
    run.limit_cpu(1.5)  # nothing to limit with: the rlimits stay
    assert run.folders == [tmp_path / "memory/sidebyside-1/run-2-3"]


def test_v2_hosts_set_cpu_max_in_the_one_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.cgroups.os.getuid", lambda: 0)
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    base = CgroupBase.create("sidebyside-1", root=tmp_path)
    assert base is not None and base.version == 2 and base.cpu_path == base.path
    assert base.folders == [str(tmp_path / "sidebyside-1")]
    run = RunCgroup(str(base.path), 2, "2-3", 256, str(base.cpu_path))
    run.limit_cpu(0.25)
    assert (run.path / "cpu.max").read_text() == "25000 100000"
    assert (run.path / "memory.max").read_text() == str(256 * 1024 * 1024)


# Two processes spinning for 1.5 s: unbounded, they take two cores (one on a
# one-core host); held to half a core, they get half a core between them.
SPIN = """import os, time
deadline = time.monotonic() + 1.5
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while time.monotonic() < deadline:
            pass
        os._exit(0)
    children.append(pid)
started = time.monotonic()
for pid in children:
    os.waitpid(pid, 0)
times = os.times()
print(round((times.children_user + times.children_system) / (time.monotonic() - started + 1e-9), 2))
"""


@pytest.mark.slow
def test_a_runs_processes_share_its_cpu_quota() -> None:
    if os.getuid() != 0:
        pytest.skip("cgroups are made by a server running as root")
    probe = CgroupBase.create(f"sidebyside-probe-{os.getpid()}")
    if probe is None:
        pytest.skip("no memory controller on this host")
    probe.remove()

    async def scenario() -> tuple[float, str]:
        pool = Pool(Limits(wall_s=10, cpus=0.5), size=1, spares_memory_mb=256)
        await pool.start()
        try:
            if pool.cgroup is None or pool.cgroup.cpu_path is None:
                pytest.skip("no CPU controller on this host")
            result = await pool.run(RunRequest(framework="pytorch", code=SPIN),
                                    Client("a", "10.0.0.1"))
            assert result.status == RunStatus.ok, result
            return float(result.stdout), pool.stats().cpu_limit
        finally:
            await pool.stop(drain_s=5)

    cores, words = asyncio.run(scenario())
    assert cores <= 0.7, cores  # 0.5 and some scheduling slack; unbounded it is 1 to 2
    assert words.startswith("0.5 cores per run (cgroup v"), words
