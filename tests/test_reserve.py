"""The reserve of ready spares: how many of each framework, and which warm-ups (sandbox/reserve.py)."""

from __future__ import annotations

from sandbox.reserve import Reserve, needs


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
    assert needs("model.fit(x, y, epochs=2)") == {"gradients", "functions"}
    assert needs("ds = ds.map(lambda x: x + 1)") == {"functions"}
    assert needs("with tf.GradientTape() as tape:\n    y = v * v") == {"gradients"}
    assert needs("y = tf.reduce_sum(x)  # nothing more") == set()
