from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.store import outputs, progress, shares
from app.store.db import Database

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on its own thread: the browser tests keep a loop on this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "sidebyside.sqlite3")
    database.start()
    yield database
    database.stop()


def test_progress_records_viewed_ran_passed(db: Database) -> None:
    async def go() -> None:
        await progress.mark(db, "l1", "tensors", "", "viewed")
        await progress.mark(db, "l1", "tensors", "creating", "ran")
        await progress.mark(db, "l1", "tensors", "creating", "passed")
        await progress.mark(db, "l2", "autograd", "x", "ran")
        mine = await progress.for_lesson(db, "l1", "tensors")
        assert mine["creating"] == progress.StepProgress(ran=True, passed=True)
        assert mine[""].viewed
        assert set(await progress.for_learner(db, "l1")) == {"tensors"}
        assert await progress.last_visit(db, "l1") == progress.LastVisit("tensors", "creating")

    run(go())


def test_attempts_count_up(db: Database) -> None:
    async def go() -> list[int]:
        return [await progress.add_attempt(db, "l1", "x", "s") for _ in range(3)]

    assert run(go()) == [1, 2, 3]


def test_share_round_trips_code_verbatim(db: Database) -> None:
    code = "print('<script>alert(1)</script>')\n\t# ünïcode\n"

    async def go() -> None:
        made = await shares.create(db, "tensors", "creating", code, "import torch\n")
        assert await shares.get(db, made.id) == made
        assert await shares.get(db, "nope") is None

    run(go())


def test_outputs_cache_by_key(db: Database) -> None:
    key = outputs.cache_key(code="x = 1", framework="pytorch", versions={"torch": "2.13"})
    assert key != outputs.cache_key(code="x = 1", framework="pytorch", versions={"torch": "2.14"})

    async def go() -> None:
        assert await outputs.get(db, key) is None
        await outputs.put(db, key, {"status": "ok"})
        assert await outputs.get(db, key) == {"status": "ok"}
        assert await outputs.get_many(db, [key, "other"]) == {key: {"status": "ok"}}

    run(go())


def test_all_writes_go_through_one_thread(db: Database) -> None:
    seen: set[str] = set()
    count = iter(range(100))

    def write(conn: sqlite3.Connection) -> None:
        seen.add(threading.current_thread().name)
        conn.execute("INSERT INTO outputs VALUES (?, '{}', 0)", (str(next(count)),))

    async def go() -> None:
        await asyncio.gather(*(db.write(write) for _ in range(20)))

    run(go())
    assert seen == {"sqlite-write"}


def test_a_failed_write_rolls_back_and_the_writer_keeps_going(db: Database) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO shares VALUES ('a', 'l', 's', '', '', 0)")
        raise RuntimeError("boom")

    async def go() -> None:
        with pytest.raises(RuntimeError):
            await db.write(bad)
        assert await shares.get(db, "a") is None
        await progress.mark(db, "l", "x", "", "viewed")
        assert (await progress.for_lesson(db, "l", "x"))[""].viewed

    run(go())


def test_reads_never_write(db: Database) -> None:
    def sneaky(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM shares")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        run(db.read(sneaky))


def test_schema_is_versioned_and_an_old_file_is_migrated(tmp_path: Path) -> None:
    from app.store.migrations import _INITIAL, MIGRATIONS, SchemaTooNew

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # a file from before versioning, with a row in it
        conn.executescript(_INITIAL)
        conn.execute("INSERT INTO shares VALUES ('s1', 'l', 's', 'tf', 'pt', 0)")
    database = Database(path)
    database.start()
    try:
        assert run(shares.get(database, "s1")) is not None
        version = run(database.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0]))
        assert version == len(MIGRATIONS)
        tables = run(database.read(lambda c: {r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}))
        assert {"classes", "class_learners", "class_passes"} <= tables
        mode = run(database.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]))
        assert mode == "wal"
    finally:
        database.stop()
    database = Database(path)  # a second start applies nothing twice
    database.start()
    database.stop()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew):
        Database(path).start()
