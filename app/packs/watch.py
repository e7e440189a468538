"""Live preview for authors: reload the packs when a file changes, and tell open pages.

`sidebyside serve --packs DIR --reload` watches DIR (watchfiles: inotify,
debounced). Each change re-reads every pack leniently, so a broken lesson
shows as an error with its file:line on the pages instead of a 500, and
bumps a generation that the pages' event stream (`/dev/reload`) passes on:
the open page fetches itself again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import watchfiles

from app.packs.loader import load_packs
from app.packs.models import Catalog
from app.packs.source import PackError

log = logging.getLogger(__name__)
DEBOUNCE_MS = 150  # an editor's save is a burst of writes; a page refreshes well within 1 s


class PackWatcher:
    def __init__(self, folder: Path, publish: Callable[[Catalog], None]) -> None:
        self.folder, self.publish = folder, publish
        self.generation = 0
        self._changed = asyncio.Condition()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async for changes in watchfiles.awatch(self.folder, stop_event=self._stop,
                                               debounce=DEBOUNCE_MS, step=25):
            self.reload()
            log.info("packs reloaded: %d file(s) changed", len(changes))

    def reload(self) -> None:
        try:
            catalog = load_packs(self.folder, strict=False)
        except PackError as exc:  # the folder itself went away
            catalog = Catalog(errors=[str(exc)])
        self.publish(catalog)
        self.generation += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def changes(self) -> AsyncIterator[int]:
        """Each new generation, until the server stops; -1 now and then to keep alive."""
        seen = self.generation
        while not self._stop.is_set():
            if self.generation != seen:
                seen = self.generation
                yield seen
                continue
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 15)
            if self.generation == seen:
                yield -1  # a keep-alive, so a closed page is noticed

    def stop(self) -> None:
        self._stop.set()
