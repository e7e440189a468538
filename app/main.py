"""Builds the FastAPI application; nothing heavy happens at import time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.settings import Settings
from sandbox.pool import Pool


def create_app(settings: Settings | None = None, pool: Pool | None = None) -> FastAPI:
    settings = settings or Settings()
    # A pool handed in is owned by the caller (tests share one between apps).
    own_pool = pool is None
    pool = pool or Pool(settings.limits(), size=settings.pool_size,
                        insecure=settings.insecure_no_sandbox)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own_pool:
            await pool.start()
        try:
            yield
        finally:
            if own_pool:
                await pool.stop()

    app = FastAPI(title="sidebyside", lifespan=lifespan)
    app.state.settings = settings
    app.state.pool = pool

    from app.routes import health, pairs, runs

    for module in (runs, pairs, health):
        app.include_router(module.router)
    return app
