"""What an executor says of itself, for /api/health: typed, one model per executor.

    Executor.stats() ── Pool ──────────> PoolStats    (slots, spares, reserve, templates)
                     └─ RemoteExecutor ─> RemoteStats  (slots per device, workers' beats)
"""

from __future__ import annotations

from pydantic import BaseModel

from sandbox.messages import KernelStatus
from sandbox.protocol import Device, Framework
from sandbox.remote.messages import WorkerBeat


class ExecutorStats(BaseModel):
    """What both executors report."""

    slots: int  # runs at once
    busy: int  # runs in flight
    queued: int  # runs waiting for a slot
    runs_started: int  # since start
    template_alive: bool  # serving: every template alive, or a worker registered
    degraded: str | None  # why not, in words
    sandbox: str  # how runs are isolated
    insecure: bool  # some runs are not isolated at all (here, or on a registered worker)
    memory_cgroups: str | None  # "v1" / "v2" where each run has its own
    memory_limit: str  # how a run's memory is bounded, in words
    cpu_limit: str  # how a run's CPU is bounded, in words


class ReserveStats(BaseModel):
    """One framework's ready spares."""

    ready: int
    warming: int
    target: int  # what the memory budget and recent demand give it
    # Prepared spares (`setups.py`), beyond the budget: the kinds runs asked for
    # lately (one spare each), those ready, those on their way.
    prepared_kinds: int = 0
    prepared: int = 0
    preparing: int = 0


class PoolStats(ExecutorStats):
    """The in-process pool: its reserve of spares and its templates."""

    spares_ready: int
    spares_warming: int
    reserve: dict[Framework, ReserveStats]
    reserve_memory_mb: int
    tensorflow_kernels: KernelStatus | None  # None until TensorFlow's template said hello
    pool_pss_mb: float | None  # as last measured; None while a template is down
    template_restarts: int


class DeviceStats(BaseModel):
    """One device's fair queue on the web server."""

    slots: int  # its registered workers' slots
    busy: int
    queued: int


class RemoteStats(ExecutorStats):
    """Remote workers: the web server's queues per device, and each worker's last beat."""

    devices: dict[Device, DeviceStats]
    workers: list[WorkerBeat]
