"""One SQLite file, one writer.

As Datasette does it: a single writer thread owns the only write connection
and takes work from a queue, each task in its own `BEGIN IMMEDIATE`
transaction; reads run on a small thread pool, each thread with its own
read-only connection. Callers await both from the event loop. The schema
is versioned and migrated by the writer before anything else
(`app.store.migrations`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.store.migrations import migrate

T = TypeVar("T")

_Job = tuple[Callable[[sqlite3.Connection], Any], "concurrent.futures.Future[Any]"]


class Database:
    def __init__(self, path: Path, read_threads: int = 3) -> None:
        self.path = path
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._failed: BaseException | None = None
        self._read_conns: list[sqlite3.Connection] = []
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=read_threads, thread_name_prefix="sqlite-read"
        )

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready = threading.Event()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="sqlite-write", daemon=True
        )
        self._writer.start()
        ready.wait()
        if self._failed is not None:
            self._writer = None
            raise self._failed

    def stop(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join()
            self._writer = None
        self._readers.shutdown(wait=True)
        for conn in self._read_conns:
            conn.close()
        self._read_conns.clear()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return await asyncio.wrap_future(future)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, fn)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            self._read_conns.append(conn)
        return fn(conn)

    def _write_loop(self, ready: threading.Event) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            migrate(conn)
        except BaseException as exc:  # start() raises it; the server must not serve
            self._failed = exc
            conn.close()
            ready.set()
            return
        ready.set()
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException as exc:  # handed to the awaiting caller
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                future.set_exception(exc)
            else:
                future.set_result(result)
        conn.close()
