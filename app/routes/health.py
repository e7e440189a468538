"""GET /api/health: is the pool serving, and with what."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import PoolDep, SettingsDep

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("")
async def read_health(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    stats = pool.stats()
    return {
        "status": "ok" if stats["template_alive"] else "degraded",
        "sandbox": stats["sandbox"],
        "insecure": settings.insecure_no_sandbox,
        "degraded": stats["degraded"],
        "memory_cgroups": stats["memory_cgroups"],
        "memory_limit": stats["memory_limit"],
        "pool": {k: stats[k] for k in ("slots", "busy", "queued", "runs_started", "spares_ready",
                                       "spares_warming", "template_restarts", "reserve",
                                       "reserve_memory_mb", "pool_pss_mb", "tensorflow_kernels",
                                       "devices")
                 if k in stats},  # remote workers keep their spares to themselves
        "workers": stats.get("workers", []),
        "device": pool.context.device,
        "versions": pool.context.versions,
    }
