"""The per-run fence's pieces on their own: what the launcher binds, cgroup names, the filter."""

from __future__ import annotations

import os

import pytest

from sandbox.cgroups import CgroupBase, RunCgroup
from sandbox.isolation import seccomp_program
from sandbox.reserve import Reserve


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


def test_the_filter_is_compiled_once_into_plain_bpf() -> None:
    program = seccomp_program()
    assert len(program) % 8 == 0 and 20 < len(program) // 8 < 4096  # struct sock_filter


def test_the_reserve_follows_demand_within_its_budget() -> None:
    reserve = Reserve(memory_mb=600)
    even = reserve.targets()
    assert even["pytorch"] > 1 and even["tensorflow"] > 1
    for _ in range(40):
        reserve.record("pytorch")
    leaning = reserve.targets()
    assert leaning["pytorch"] > even["pytorch"] and leaning["tensorflow"] == 1
    for targets in (even, leaning):
        spent = sum(n * reserve.spare_cost_mb(f) for f, n in targets.items())
        assert spent <= 600 + reserve.spare_cost_mb("tensorflow")  # the one-each floor may add one


def test_tensorflow_spares_make_only_the_warm_ups_recent_runs_needed() -> None:
    reserve = Reserve(memory_mb=600)
    eager = "import tensorflow as tf\nprint(tf.ones([2]) * 2)"
    traced = "import tensorflow as tf\n@tf.function\ndef f(x):\n    return x * 2\nprint(f(tf.ones([2])))"
    assert reserve.warm_ups("tensorflow") == ["functions", "gradients"]  # lessons train
    for _ in range(10):
        reserve.record("tensorflow", eager)
    assert reserve.warm_ups("tensorflow") == []
    for _ in range(10):
        reserve.record("tensorflow", traced)
    assert reserve.warm_ups("tensorflow") == ["functions"]
    assert reserve.warm_ups("pytorch") == []  # PyTorch spares never start TF


def test_what_a_tensorflow_snippet_needs_is_read_from_its_text() -> None:
    from sandbox.reserve import needs

    assert needs("model.fit(x, y, epochs=2)") == {"gradients", "functions"}
    assert needs("ds = ds.map(lambda x: x + 1)") == {"functions"}
    assert needs("with tf.GradientTape() as tape:\n    y = v * v") == {"gradients"}
    assert needs("y = tf.reduce_sum(x)  # nothing more") == set()


def test_the_template_folds_its_heap_again_after_many_spares_once_quiet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import hugepages, template
    from sandbox.supervisor import Supervision

    folds: list[int] = []
    monkeypatch.setattr(hugepages, "collapse_heap", lambda: folds.append(1) or 0)
    refold = template.Refold(Supervision(secure=False))
    for _ in range(template.Refold.EVERY - 1):
        refold.spawned()
    assert refold.timer is None
    refold.spawned()
    assert refold.timer is not None
    refold._fold()  # a spare was asked for just now: a burst may be on, so later
    assert folds == [] and refold.timer is not None
    refold.last -= template.Refold.QUIET_S
    refold._fold()
    assert folds == [1] and refold.count == 0
