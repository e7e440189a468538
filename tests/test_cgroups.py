"""Memory cgroups per run (sandbox/cgroups.py)."""

from __future__ import annotations

import os

import pytest

from sandbox.cgroups import CgroupBase, RunCgroup


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
