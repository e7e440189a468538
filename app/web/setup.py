"""Wires the learner's pages into the app: middleware, static files, the store."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.classes.service import ClassService
from app.store.db import Database
from app.web.jobs import Jobs
from app.web.render import STATIC
from app.web.runs import Runner
from app.web.security import SecurityMiddleware

DB_FILE = "sidebyside.sqlite3"


@dataclasses.dataclass
class Pages:
    db: Database
    runner: Runner
    jobs: Jobs


def install(app: FastAPI) -> None:
    """Also makes the store and the class service; both start with `running`."""
    settings = app.state.settings
    app.state.db = db = Database(settings.data_dir / DB_FILE)
    app.state.classes = ClassService(db, app.state.catalog,
                                     max_learners=settings.class_max_learners,
                                     joins_per_minute=settings.class_joins_per_minute)

    app.add_middleware(SecurityMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The store and the background work of the pages, for the app's lifespan."""
    db: Database = app.state.db
    db.start()
    runner = Runner(app.state.pool, db)
    # lesson outputs are computed ahead when a lesson is first opened, not
    # here: a server (or a test) that never shows a page runs nothing extra
    app.state.pages = Pages(db, runner, Jobs())
    try:
        yield
    finally:
        app.state.classes.bus.close()  # open streams end; their pages reconnect
        app.state.pages.jobs.cancel_all()
        await runner.stop()
        db.stop()
