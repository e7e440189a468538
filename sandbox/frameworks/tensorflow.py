"""TensorFlow's start-up: its template's matmul kernels, a spare's warm-ups, tracing costs.

    template: import TensorFlow; have oneDNN generate the sgemm kernels every
              spare's matmuls use (`onednn.py`), unless turned off
    spare:    a prepared spare's setting or import (`setups.py`); start the
              eager runtime; the optional warm-ups (`WarmUp`) recent
              runs needed (`reserve.py` picks them); none in a fresh spare,
              whose snippet configures the runtime first
    run:      tf.function tracking for graphs; the first run's tracing cost
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from sandbox import onednn
from sandbox.messages import KernelStatus
from sandbox.protocol import Timings, WarmUp
from sandbox.setups import cpus_of


def in_template(precompile_kernels: bool) -> KernelStatus:
    """Import TensorFlow once, and generate oneDNN's kernels for every spare (or say why not)."""
    # TensorFlow, and what an export to ONNX (tf2onnx) and NumPy's random
    # generators load on first use (≈ 0.2 s of CPU each such run paid again):
    # shared pages of every spare. Imports only: the eager runtime is not
    # started and no thread starts (tests/test_template.py checks both).
    import numpy.random  # noqa: F401
    import onnx.checker
    import onnx.helper
    import onnx.shape_inference  # noqa: F401
    import tensorflow
    import tensorflow.saved_model
    import tensorflow.saved_model.experimental  # noqa: F401  (Keras's ONNX export)
    import tf2onnx.convert  # noqa: F401

    # tf.data's dataset kinds that Keras's fit and a distributed dataset load
    # on first use (measured: what a first fit adds to sys.modules in a spare).
    for name in ("concatenate_op", "flat_map_op", "from_tensors_op", "range_op",
                 "rebatch_op", "zip_op"):
        importlib.import_module(f"tensorflow.python.data.ops.{name}")

    return onednn.precompile() if precompile_kernels else onednn.off()


def _eager_runtime() -> None:
    import tensorflow as tf

    # TF's eager runtime (thread pools, device set-up) starts at its first op;
    # a first matmul also generates its CPU kernel.
    x = tf.ones([4, 4])
    tf.reduce_sum(tf.nn.relu(x @ x)).numpy()


def _gradients() -> None:
    import tensorflow as tf

    v = tf.Variable(tf.random.normal([4, 4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.relu(tf.matmul(v, tf.ones([4, 4]))))
    tape.gradient(loss, v).numpy()


def _functions() -> None:
    import tensorflow as tf

    @tf.function
    def _double(x: Any) -> Any:
        return x * 2

    _double(tf.constant(1.0)).numpy()  # starts AutoGraph's machinery


OPTIONAL_WARM_UPS: dict[WarmUp, Callable[[], None]] = {
    "gradients": _gradients, "functions": _functions}


def prepare(setup: str | None) -> None:
    """A prepared spare's own start-up (`setups.py`), before anything starts the runtime."""
    count = cpus_of(setup)
    if setup == "with-torch":
        import torch  # noqa: F401
    elif count is not None:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def _mirrored_step(count: int) -> None:
    """A cpus-N spare: one step of a MirroredStrategy over its N logical CPUs.

    A first distributed step creates each op's kernel on every device, the
    multi-device iterator and the collectives' state (≈ 0.1–0.2 s of the DDP
    lesson's first step over its second); made here, the run finds them. The
    runtime keeps each collective's shape by group and instance key, and the
    run's strategy numbers its groups from 1: this one's are far above.
    """
    import tensorflow as tf

    class WarmUpStrategy(tf.distribute.MirroredStrategy):  # type: ignore[misc]
        _collective_key_base = 1 << 20

    strategy = WarmUpStrategy([f"/cpu:{i}" for i in range(count)])
    with strategy.scope():
        weights = tf.Variable(tf.ones([2, 1]))
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(tf.ones([2 * count, 2])).batch(2 * count))

    @tf.function
    def step(x: Any) -> Any:
        def on_each_replica(x: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.matmul(x, weights)))
            gradient = tape.gradient(loss, weights)
            summed = tf.distribute.get_replica_context().all_reduce("sum", gradient)
            weights.assign_sub(0.1 * summed)
            return summed
        return strategy.run(on_each_replica, args=(x,))

    summed = step(next(iter(batches)))
    strategy.reduce("sum", summed, axis=None).numpy()


def warm_up(extras: Sequence[WarmUp] = (), setup: str | None = None) -> None:
    _eager_runtime()
    for name in extras:
        OPTIONAL_WARM_UPS[name]()
    count = cpus_of(setup)
    if count is not None:
        _mirrored_step(count)


def threads() -> dict[str, int]:
    return {}


def before_snippet(graph: bool) -> None:
    if graph:
        from sandbox import graphs

        graphs.install_tracking()


def after_snippet(namespace: dict[str, Any], timings: Timings) -> None:
    """The first run's excess over the median when the snippet traced tf.functions."""
    traced = any(type(v).__name__ == "Function" and hasattr(v, "experimental_get_tracing_count")
                 and v.experimental_get_tracing_count() > 0 for v in namespace.values())
    if traced and timings.first_ms is not None and timings.median_ms is not None:
        timings.trace_ms = max(timings.first_ms - timings.median_ms, 0.0)
