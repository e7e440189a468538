"""A class learner's drafts: what their editors hold, per step and side, kept on the server.

The browser keeps every learner's drafts itself; a class learner's also
come here, so they follow the learner to another device and the
instructor's "open a learner's code" shows what they are typing, not only
what they last ran. A draft equal to the lesson's code is deleted.
"""

from __future__ import annotations

import sqlite3
import time

from app.store.db import Database

SIDES = ("tensorflow", "pytorch", "exercise")


async def save(db: Database, learner_id: str, lesson: str, step: str, side: str,
               code: str | None) -> None:
    """Keep `code` as the draft; None drops it (the editor is back to the lesson's code)."""
    def write(conn: sqlite3.Connection) -> None:
        if code is None:
            conn.execute("DELETE FROM drafts WHERE learner_id = ? AND lesson = ? AND step = ?"
                         " AND side = ?", (learner_id, lesson, step, side))
            return
        conn.execute(
            "INSERT INTO drafts (learner_id, lesson, step, side, code, saved_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (learner_id, lesson, step, side)"
            " DO UPDATE SET code = excluded.code, saved_at = excluded.saved_at",
            (learner_id, lesson, step, side, code, time.time()))

    await db.write(write)


async def for_lesson(db: Database, learner_id: str, lesson: str) -> dict[str, dict[str, str]]:
    """The learner's drafts of a lesson: step -> side -> code."""
    def read(conn: sqlite3.Connection) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for step, side, code in conn.execute(
                "SELECT step, side, code FROM drafts WHERE learner_id = ? AND lesson = ?",
                (learner_id, lesson)):
            found.setdefault(step, {})[side] = code
        return found

    return await db.read(read)

