"""Builds the FastAPI application; nothing heavy happens at import time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import errors
from app.resources import STATIC
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
    port_pages,
    ports,
    reload,
    runs,
    steps,
    teaching,
)
from app.settings import Settings
from app.state import build_state
from app.web.security import SecurityMiddleware
from sandbox.executor import Executor


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> FastAPI:
    """An executor handed in is owned by the caller (tests share one pool between apps)."""
    state = build_state(settings or Settings(), executor)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with state.running():
            yield

    # /docs is served from static/ (app.routes.docs): the default loads Swagger UI
    # from a CDN, which the app's own CSP blocks.
    app = FastAPI(title="sidebyside", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.sidebyside = state  # the one attribute: read through app.deps
    errors.install(app, state.settings.port_upload_mb, state.settings.port_inputs_mb)
    app.add_middleware(SecurityMiddleware)  # CSP and CSRF
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (runs, pairs, lessons, classes, packs, ports, health, docs, reload, pages,
                   steps, teaching):
        app.include_router(module.router)
    for module in (class_pages, dashboard, pack_pages, port_pages):  # and their CSRF-checked forms
        app.include_router(module.router)
        app.include_router(module.posts)
    return app
