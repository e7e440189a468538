"""Builds the FastAPI application; nothing heavy happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app import errors
from app.packs.library import Library
from app.packs.loader import load_packs
from app.packs.models import Catalog
from app.packs.watch import PackWatcher
from app.routes import (
    class_pages,
    classes,
    dashboard,
    docs,
    health,
    lessons,
    pack_pages,
    packs,
    pages,
    pairs,
    reload,
    runs,
    steps,
)
from app.settings import Settings
from app.web import setup as web_setup
from sandbox.executor import Executor
from sandbox.pool import Pool

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, pool: Executor | None = None) -> FastAPI:
    settings = settings or Settings()
    # A pool handed in is owned by the caller (tests share one between apps).
    own_pool = pool is None
    pool = pool or make_executor(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own_pool:
            await pool.start()
        try:
            async with web_setup.running(app):
                await app.state.library.resume()
                watching = (asyncio.get_running_loop().create_task(app.state.watcher.run())
                            if app.state.watcher else None)
                try:
                    yield
                finally:
                    await app.state.library.stop()
                    if watching is not None:
                        app.state.watcher.stop()
                        await asyncio.gather(watching, return_exceptions=True)
        finally:
            if own_pool:
                await pool.stop()

    # /docs is served from static/ (app.routes.docs): the default loads Swagger UI
    # from a CDN, which the app's own CSP blocks.
    app = FastAPI(title="sidebyside", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.pool = pool
    errors.install(app)
    # Lenient: a broken lesson is logged and left out; `sidebyside check` is the gate.
    app.state.bundled = app.state.catalog = load_packs(settings.packs_dir, strict=False)
    for error in app.state.bundled.errors:
        log.error("lesson pack: %s", error)

    web_setup.install(app)  # the store, /static, CSP and CSRF

    def publish() -> None:
        """The site's catalog: the bundled packs and every uploaded version, as one."""
        bundled, uploaded = app.state.bundled, list(app.state.library.packs.values())
        app.state.catalog = app.state.classes.catalog = Catalog(
            packs=[*bundled.packs, *uploaded], errors=bundled.errors)

    def reloaded(catalog: Catalog) -> None:
        app.state.bundled = catalog
        publish()

    app.state.watcher = PackWatcher(settings.packs_dir, reloaded) if settings.reload_packs \
        else None
    app.state.library = Library(settings.data_dir / "packs", app.state.db,
                                lambda: app.state.bundled, pool, on_change=publish)
    publish()
    for module in (runs, pairs, lessons, classes, packs, health, docs, reload, pages,
                   steps):
        app.include_router(module.router)
    for module in (class_pages, dashboard, pack_pages):  # pages and their CSRF-checked forms
        app.include_router(module.router)
        app.include_router(module.posts)
    return app


def make_executor(settings: Settings) -> Executor:
    """Remote workers when a broker is set; otherwise today's pool, in this process."""
    if settings.broker_url:
        from sandbox.remote.client import RemoteExecutor  # Celery is loaded only when used

        return RemoteExecutor(settings.broker_url, settings.limits(),
                              queue_size=settings.queue_size,
                              queue_per_learner=settings.queue_per_learner,
                              queue_per_address=settings.queue_per_address)
    return Pool(settings.limits(), size=settings.pool_size, insecure=settings.insecure_no_sandbox,
                queue_size=settings.queue_size, queue_per_learner=settings.queue_per_learner,
                queue_per_address=settings.queue_per_address,
                spares_memory_mb=settings.spares_memory_mb)
