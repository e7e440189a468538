"""The composition root: every long-lived part of the app, built in one function.

    Settings ─> Executor (the local pool, or the client of remote workers)
             ─> Database ─> ClassService, OutputCache
             ─> RunService (executor, cache, classes, jobs)   the one run pipeline
             ─> Library (uploaded packs, checked through the RunService)
             ─> PortService (Keras models ported in the sandbox, through the executor)
             ─> PackWatcher (author's live preview), when asked for

Routes reach these through `app.deps`; besides them only the page chrome (`app.web.render`,
`app.web.classbanner`) and `sidebyside serve` read `app.state.sidebyside`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from app import check
from app.classes.service import ClassService
from app.classes.streamslots import StreamSlots
from app.packs.library import Library, PackLimits
from app.packs.loader import load_packs
from app.packs.models import Catalog, Pack
from app.packs.watch import PackWatcher
from app.pipeline.cache import OutputCache
from app.pipeline.service import RunService
from app.ports.service import PortService
from app.settings import Settings
from app.store.db import Database
from sandbox.executor import Executor

log = logging.getLogger(__name__)
DB_FILE = "sidebyside.sqlite3"


@dataclasses.dataclass
class AppState:
    settings: Settings
    executor: Executor
    owns_executor: bool  # an executor handed in is its caller's to start and stop
    db: Database
    bundled: Catalog  # the packs folder, as last read
    classes: ClassService
    runs: RunService
    library: Library
    ports: PortService
    watcher: PackWatcher | None
    catalog: Catalog = dataclasses.field(default_factory=Catalog)  # bundled + uploaded

    def publish(self) -> None:
        """The site's catalog: the bundled packs and every uploaded version, as one."""
        uploaded = list(self.library.packs.values())
        self.catalog = self.classes.catalog = Catalog(packs=[*self.bundled.packs, *uploaded],
                                                      errors=self.bundled.errors)

    def reloaded(self, catalog: Catalog) -> None:
        self.bundled = catalog
        self.publish()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Everything that runs for the app's lifespan, stopped in reverse order."""
        if self.owns_executor:
            await self.executor.start()
        self.db.start()
        try:
            await self.library.resume()
            await self.ports.resume()
            watching = (asyncio.get_running_loop().create_task(self.watcher.run())
                        if self.watcher else None)
            try:
                yield
            finally:
                await self.library.stop()
                await self.ports.stop()
                if watching is not None and self.watcher is not None:
                    self.watcher.stop()
                    await asyncio.gather(watching, return_exceptions=True)
                self.classes.bus.close()  # open streams end; their pages reconnect
                await self.runs.stop()
        finally:
            self.db.stop()
            if self.owns_executor:
                await self.executor.stop()


def build_state(settings: Settings, executor: Executor | None = None) -> AppState:
    """Nothing starts here (`AppState.running` does): tests build apps freely."""
    owns_executor = executor is None
    executor = executor or make_executor(settings)
    # Lenient: a broken lesson is logged and left out; `sidebyside check` is the gate.
    bundled = load_packs(settings.packs_dir, strict=False)
    for error in bundled.errors:
        log.error("lesson pack: %s", error)
    db = Database(settings.data_dir / DB_FILE)
    classes = ClassService(
        db, bundled, max_learners=settings.class_max_learners,
        joins_per_minute=settings.class_joins_per_minute,
        joins_per_class_per_minute=settings.class_joins_per_class_per_minute,
        classes_per_address_per_hour=settings.classes_per_address_per_hour,
        streams=StreamSlots.for_this_process(per_address=settings.sse_streams_per_address,
                                             per_token=settings.sse_streams_per_token))
    runs = RunService(executor, OutputCache(db), classes)

    async def check_upload(pack: Pack, folder: Path) -> tuple[bool, list[dict[str, object]]]:
        return await check.check_upload(runs, pack, folder)

    # The library reads the bundled packs and announces its changes through the
    # state it is part of (bound late: `state` exists before either is called).
    library = Library(settings.data_dir / "packs", db, lambda: state.bundled, check_upload,
                      pack_limits=PackLimits(settings.pack_max_lessons,
                                             settings.pack_max_steps_per_lesson),
                      on_change=lambda: state.publish())
    ports = PortService(settings.data_dir / "ports", db, executor)
    state = AppState(settings, executor, owns_executor, db, bundled, classes, runs, library,
                     ports, watcher=None)
    if settings.reload_packs:
        state.watcher = PackWatcher(settings.packs_dir, state.reloaded)
    state.publish()
    return state


def make_executor(settings: Settings) -> Executor:
    """Remote workers when a broker is set; otherwise the pool, in this process."""
    if settings.broker_url:
        from sandbox.remote.client import RemoteExecutor  # Celery is loaded only when used

        return RemoteExecutor(settings.broker_url, settings.limits(), settings.worker_signer(),
                              worker_max_slots=settings.worker_max_slots,
                              queue_size=settings.queue_size,
                              queue_per_learner=settings.queue_per_learner,
                              queue_per_address=settings.queue_per_address)
    from sandbox.pool import Pool

    return Pool(settings.limits(), size=settings.pool_size, insecure=settings.insecure_no_sandbox,
                queue_size=settings.queue_size, queue_per_learner=settings.queue_per_learner,
                queue_per_address=settings.queue_per_address,
                spares_memory_mb=settings.spares_memory_mb)
