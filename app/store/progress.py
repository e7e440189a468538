"""What each anonymous learner has viewed, run and passed."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

from app.store.db import Database


@dataclasses.dataclass(frozen=True)
class StepProgress:
    viewed: bool = False
    ran: bool = False
    passed: bool = False
    attempts: int = 0


@dataclasses.dataclass(frozen=True)
class LastVisit:
    lesson: str
    step: str


_UPSERT = """
INSERT INTO progress (learner, lesson, step, {col}) VALUES (?, ?, ?, ?)
ON CONFLICT (learner, lesson, step) DO UPDATE SET {col} = coalesce({col}, excluded.{col})
"""


async def mark(db: Database, learner: str, lesson: str, step: str, what: str) -> None:
    """Record that `step` (or '' for the lesson) was viewed, ran or passed."""
    col = {"viewed": "viewed_at", "ran": "ran_at", "passed": "passed_at"}[what]
    now = time.time()

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(_UPSERT.format(col=col), (learner, lesson, step, now))
        if what == "viewed":  # the most recent visit drives "continue where you left off"
            conn.execute(
                "UPDATE progress SET viewed_at = ? WHERE learner = ? AND lesson = ? AND step = ?",
                (now, learner, lesson, step),
            )

    await db.write(write)


async def add_attempt(db: Database, learner: str, lesson: str, step: str) -> int:
    def write(conn: sqlite3.Connection) -> int:
        conn.execute(
            "INSERT INTO progress (learner, lesson, step, ran_at, attempts) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (learner, lesson, step) DO UPDATE SET attempts = attempts + 1",
            (learner, lesson, step, time.time()),
        )
        row = conn.execute(
            "SELECT attempts FROM progress WHERE learner = ? AND lesson = ? AND step = ?",
            (learner, lesson, step),
        ).fetchone()
        return int(row[0])

    return await db.write(write)


async def for_lesson(db: Database, learner: str, lesson: str) -> dict[str, StepProgress]:
    def read(conn: sqlite3.Connection) -> dict[str, StepProgress]:
        rows = conn.execute(
            "SELECT step, viewed_at, ran_at, passed_at, attempts FROM progress"
            " WHERE learner = ? AND lesson = ?",
            (learner, lesson),
        )
        return {r[0]: _row(r) for r in rows}

    return await db.read(read)


async def for_learner(db: Database, learner: str) -> dict[str, dict[str, StepProgress]]:
    def read(conn: sqlite3.Connection) -> dict[str, dict[str, StepProgress]]:
        out: dict[str, dict[str, StepProgress]] = {}
        rows = conn.execute(
            "SELECT lesson, step, viewed_at, ran_at, passed_at, attempts FROM progress"
            " WHERE learner = ?",
            (learner,),
        )
        for r in rows:
            out.setdefault(r[0], {})[r[1]] = _row(r[1:])
        return out

    return await db.read(read)


async def last_visit(db: Database, learner: str) -> LastVisit | None:
    def read(conn: sqlite3.Connection) -> LastVisit | None:
        row = conn.execute(
            "SELECT lesson, step FROM progress WHERE learner = ?"
            " ORDER BY max(coalesce(viewed_at, 0), coalesce(ran_at, 0)) DESC LIMIT 1",
            (learner,),
        ).fetchone()
        return LastVisit(row[0], row[1]) if row else None

    return await db.read(read)


def _row(r: sqlite3.Row | tuple[object, ...]) -> StepProgress:
    return StepProgress(
        viewed=r[1] is not None, ran=r[2] is not None, passed=r[3] is not None,
        attempts=int(r[4] or 0),  # type: ignore[arg-type, call-overload]
    )
