"""Live classes: one row each, with the state every learner's page follows."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time

from app.store.db import Database


@dataclasses.dataclass(frozen=True)
class Class:
    code: str
    title: str
    pack: str
    lessons: tuple[str, ...]
    instructor_digest: str
    created_at: float
    ended_at: float | None = None
    paused: bool = False
    follow_lesson: str | None = None
    follow_step: str | None = None
    follow_seq: int = 0
    message: str | None = None
    message_seq: int = 0

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


COLUMNS = ("code, title, pack, lessons, instructor_digest, created_at, ended_at, paused,"
            " follow_lesson, follow_step, follow_seq, message, message_seq")


def from_row(row: sqlite3.Row | tuple[object, ...]) -> Class:
    values = list(row)
    values[3] = tuple(json.loads(str(values[3])))
    values[7] = bool(values[7])
    return Class(*values)  # type: ignore[arg-type]


async def create(db: Database, klass: Class) -> bool:
    """Insert; False when the code is taken (the caller draws another)."""

    def write(conn: sqlite3.Connection) -> bool:
        try:
            conn.execute(
                f"INSERT INTO classes ({COLUMNS}) VALUES ({', '.join('?' * 13)})",
                (klass.code, klass.title, klass.pack, json.dumps(list(klass.lessons)),
                 klass.instructor_digest, klass.created_at, None, 0, None, None, 0, None, 0))
        except sqlite3.IntegrityError:
            return False
        return True

    return await db.write(write)


async def get(db: Database, code: str) -> Class | None:
    def read(conn: sqlite3.Connection) -> Class | None:
        row = conn.execute(f"SELECT {COLUMNS} FROM classes WHERE code = ?", (code,)).fetchone()
        return from_row(row) if row else None

    return await db.read(read)


async def follow(db: Database, code: str, lesson: str, step: str) -> None:
    await _update(db, code, "follow_lesson = ?, follow_step = ?, follow_seq = follow_seq + 1",
                  lesson, step)


async def message(db: Database, code: str, text: str) -> None:
    await _update(db, code, "message = ?, message_seq = message_seq + 1", text)


async def pause(db: Database, code: str, paused: bool) -> None:
    await _update(db, code, "paused = ?", int(paused))


async def end(db: Database, code: str) -> None:
    await _update(db, code, "ended_at = coalesce(ended_at, ?), paused = 0", time.time())


async def _update(db: Database, code: str, assignments: str, *values: object) -> None:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(f"UPDATE classes SET {assignments} WHERE code = ?", (*values, code))

    await db.write(write)
