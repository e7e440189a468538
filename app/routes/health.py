"""GET /api/health: is the executor serving, and with what."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.deps import ExecutorDep, SettingsDep
from sandbox.protocol import Device, Framework
from sandbox.remote.messages import WorkerBeat
from sandbox.stats import DeviceStats, PoolStats, RemoteStats, ReserveStats

router = APIRouter(prefix="/api/health", tags=["health"])


class LocalPoolHealth(BaseModel):
    """The in-process pool's slots and spares."""

    model_config = ConfigDict(extra="forbid")  # one shape or the other, never a blend

    slots: int
    busy: int
    queued: int
    runs_started: int
    spares_ready: int
    spares_warming: int
    template_restarts: int
    reserve: dict[Framework, ReserveStats]
    reserve_memory_mb: int
    pool_pss_mb: float | None
    # whether TensorFlow's template generated oneDNN's matmul kernels, or why not
    tensorflow_kernels: str | None


class RemotePoolHealth(BaseModel):
    """Remote workers keep their spares to themselves: slots, and slots per device."""

    model_config = ConfigDict(extra="forbid")

    slots: int
    busy: int
    queued: int
    runs_started: int
    devices: dict[Device, DeviceStats]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    sandbox: str
    insecure: bool
    degraded: str | None
    memory_cgroups: str | None
    memory_limit: str
    cpu_limit: str
    pool: LocalPoolHealth | RemotePoolHealth
    workers: list[WorkerBeat]
    device: str
    versions: dict[str, str]


def _pool(stats: PoolStats | RemoteStats) -> LocalPoolHealth | RemotePoolHealth:
    if isinstance(stats, RemoteStats):
        return RemotePoolHealth(slots=stats.slots, busy=stats.busy, queued=stats.queued,
                                runs_started=stats.runs_started, devices=stats.devices)
    kernels = stats.tensorflow_kernels
    return LocalPoolHealth(
        slots=stats.slots, busy=stats.busy, queued=stats.queued,
        runs_started=stats.runs_started, spares_ready=stats.spares_ready,
        spares_warming=stats.spares_warming, template_restarts=stats.template_restarts,
        reserve=stats.reserve, reserve_memory_mb=stats.reserve_memory_mb,
        pool_pss_mb=stats.pool_pss_mb, tensorflow_kernels=kernels.words() if kernels else None)


@router.get("")
async def read_health(pool: ExecutorDep, settings: SettingsDep) -> Health:
    stats = pool.stats()
    return Health(
        status="ok" if stats.template_alive and stats.degraded is None else "degraded",
        sandbox=stats.sandbox,
        insecure=settings.insecure_no_sandbox or stats.insecure,
        degraded=stats.degraded,
        memory_cgroups=stats.memory_cgroups,
        memory_limit=stats.memory_limit,
        cpu_limit=stats.cpu_limit,
        pool=_pool(stats),
        workers=stats.workers if isinstance(stats, RemoteStats) else [],
        device=pool.context.device,
        versions=pool.context.versions,
    )
