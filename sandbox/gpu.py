"""The GPU inside a spare: its own CUDA context, memory caps, and what it reports.

Called only in a spare (`runner.warm_up`), after the fork and after the
spare has fenced itself in; never in the template. CUDA does not survive a
fork: a parent that initialised it hands its children a driver state they
can't use (they hang or fail), so the template only imports the frameworks
and each spare starts CUDA for itself, before its snippet arrives.

A spare sees a GPU only when the pool bound one into the sandbox
(`gpu_binds.py`): then `/dev/nvidiactl` exists in its view. On a host
without one nothing here touches CUDA, not even to ask.

The memory caps are the frameworks' own allocator limits, set before either
allocates on the device: `LogicalDeviceConfiguration(memory_limit=...)`
for TensorFlow (growth comes from `TF_FORCE_GPU_ALLOW_GROWTH`, which TF
applies to the capped allocator too; `set_memory_growth` itself refuses a
device that has a logical configuration) and
`torch.cuda.set_per_process_memory_fraction` for PyTorch. A spare caps
each framework it holds imported: its own, since its template imports only
that one. A snippet that imports the other framework itself gets TF's
growth without a limit, or torch without a fraction. The caps keep
an honest snippet's runaway allocation from taking the device; a hostile one
can lift them (the kernel has no GPU memory limit), so what bounds it is
one run per GPU at a time (`gpu_binds.run_slots`) and its process's death.
"""

from __future__ import annotations

import ctypes
import os
import sys

CONTROL_NODE = "/dev/nvidiactl"
_state = {"tensorflow": False}  # TF's GPU set up in this process: timings sync it


def present(dev: str = "/dev") -> bool:
    """Whether this process's view holds an NVIDIA GPU (checked without touching CUDA)."""
    return os.path.exists(os.path.join(dev, os.path.basename(CONTROL_NODE)))


def cap_tensorflow(memory_mb: int) -> bool:
    """One logical GPU of at most `memory_mb` MiB, before TF starts its runtime; False: none."""
    import tensorflow as tf

    devices = tf.config.list_physical_devices("GPU")
    for device in devices:
        tf.config.set_logical_device_configuration(
            device, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_mb)])
    return bool(devices)


def cap_torch(memory_mb: int) -> float:
    """The caching allocator's share of cuda:0 that is `memory_mb` MiB; returns the fraction."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    fraction = min(1.0, memory_mb * 2**20 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    return fraction


def warm_torch() -> None:
    """A context on cuda:0 with cuBLAS loaded and autograd's device thread started."""
    import torch

    w = torch.randn(4, 4, device="cuda:0", requires_grad=True)
    torch.relu(w @ torch.ones(4, 4, device="cuda:0")).sum().backward()
    torch.cuda.synchronize()


def warm_tensorflow() -> None:
    """TF's GPU device (stream, allocator, cuBLAS): its first op goes to GPU:0 by itself."""
    import tensorflow as tf

    with tf.device("/GPU:0"):
        x = tf.ones([4, 4])
        tf.reduce_sum(tf.nn.relu(x @ x)).numpy()
    _state["tensorflow"] = True


def prepare(framework: str, memory_mb: int, warm: bool = True) -> str:
    """Caps, then this spare's own framework's start-up on the GPU; returns the device string.

    `warm=False` (a fresh spare, for a snippet that configures the runtime
    itself) sets the caps only, and its run starts CUDA.

    A framework whose build has no CUDA (a CPU wheel left on a GPU host) is
    left on the CPU rather than failing the spare; the string says so.
    """
    tf_sees_it = torch_sees_it = False
    if framework == "tensorflow" or "tensorflow" in sys.modules:
        tf_sees_it = cap_tensorflow(memory_mb)  # before anything starts TF's runtime
    if framework == "pytorch" or "torch" in sys.modules:
        import torch

        torch_sees_it = torch.cuda.is_available()
        if torch_sees_it:
            cap_torch(memory_mb)
    if framework == "pytorch" and torch_sees_it and warm:
        warm_torch()
    elif framework == "tensorflow" and tf_sees_it and warm:
        warm_tensorflow()
    sees_it = tf_sees_it if framework == "tensorflow" else torch_sees_it
    return describe() + ("" if sees_it else f" (unused: {framework} built without CUDA)")


def describe() -> str:
    """`NVIDIA H200, 140 GiB, CUDA 12.8`, from the driver itself, whichever framework is here."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "NVIDIA GPU (no libcuda.so.1)"
    name = ctypes.create_string_buffer(256)
    total = ctypes.c_size_t()
    version = ctypes.c_int()
    if (cuda.cuInit(0) or cuda.cuDeviceGetName(name, len(name), 0)
            or cuda.cuDeviceTotalMem_v2(ctypes.byref(total), 0)
            or cuda.cuDriverGetVersion(ctypes.byref(version))):
        return "NVIDIA GPU (the CUDA driver did not answer)"
    major, minor = divmod(version.value // 10, 100)
    return f"{name.value.decode(errors='replace')}, {total.value / 2**30:.0f} GiB, " \
           f"CUDA {major}.{minor}"


def sync() -> None:
    """Wait for queued device work (both frameworks) before a timing reads the clock."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    if _state["tensorflow"]:
        import tensorflow as tf

        if tf.executing_eagerly():  # a snippet may have turned eager execution off
            tf.test.experimental.sync_devices()
