"""Every limit a run is held to, in one place (and the one switch of how spares start).

The web side builds a `Limits` from its settings; the spare applies all of
them in `rlimits.apply_limits` before it runs a snippet, and its GPU caps
in its warm-up (`gpu.py`). The GPU fields also say how the pool shares its
one GPU out (`gpu_binds.py`).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0  # killed after this long, sleeping or not
    cpu_s: int = 20  # RLIMIT_CPU: CPU seconds across all threads (2 cores x wall)
    cpus: float = 2.0  # cores a run may use at once: a cgroup CPU quota where there is one
    memory_mb: int = 2048  # RLIMIT_DATA, and the cgroup limit where there is one
    # RLIMIT_AS must leave room for the ~1.8 GB of virtual mappings both
    # frameworks hold after their first op; RLIMIT_DATA does the real work.
    address_space_mb: int = 16384
    processes: int = 128  # RLIMIT_NPROC for the run's own uid: threads count too
    file_size_mb: int = 16  # RLIMIT_FSIZE: largest file a run may write
    open_files: int = 256  # RLIMIT_NOFILE
    scratch_mb: int = 64  # size of the run's private tmpfs
    output_bytes: int = 256 * 1024  # per stream; more ends the run (output_limit)
    result_bytes: int = 8 * 1024 * 1024  # values, graphs and captured arrays
    max_timeout_s: float = 60.0  # the most a request may ask for
    gpu_device: int = 0  # N of /dev/nvidiaN, the one GPU the sandbox sees; -1: none
    gpu_mig_instance: str = ""  # "GI/CI": the one MIG instance of that GPU runs see; "": all
    gpu_memory_mb: int = 4096  # each framework's allocator cap on the GPU, per run
    gpu_runs_per_device: int = 1  # runs at once on the GPU: the pool's slots there
    gpu_spares: int = 8  # ready spares at most on a GPU pool: each holds a CUDA context
    # Not a limit, but the template's to know: TensorFlow's generates oneDNN's
    # matmul kernels once for every spare (onednn.py); False leaves each spare
    # to generate its own at its first matmul, as TensorFlow does.
    onednn_precompile: bool = True
    # A port (a Keras model to PyTorch, proved; `sandbox/porter/`) is a run of
    # its own with room for ResNet50: both frameworks, two copies of ~100 MB of
    # weights, every layer's output kept for the proof, ONNX exports on request.
    port_wall_s: float = 300.0
    port_memory_mb: int = 8192
    port_file_size_mb: int = 1024  # the archive the run writes back (model.py, weights...)
    port_scratch_mb: int = 2048  # its private tmpfs: ONNX exports, the archive's parts

    def for_port(self) -> Limits:
        """A port's limits: the port fields in place of a snippet's."""
        return dataclasses.replace(
            self, wall_s=self.port_wall_s, max_timeout_s=self.port_wall_s,
            cpu_s=int(self.port_wall_s * self.cpus) + 1, memory_mb=self.port_memory_mb,
            file_size_mb=self.port_file_size_mb, scratch_mb=self.port_scratch_mb,
            address_space_mb=max(self.address_space_mb, self.port_memory_mb * 4))

    def with_timeout(self, requested_s: float | None) -> Limits:
        wall = self.wall_s if requested_s is None else min(requested_s, self.max_timeout_s)
        return dataclasses.replace(self, wall_s=wall, cpu_s=max(self.cpu_s, int(wall * 2) + 1))
