"""Share permalinks: an edited pair stored under a short random id."""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import time

from app.store.db import Database


@dataclasses.dataclass(frozen=True)
class Share:
    id: str
    lesson: str
    step: str
    tensorflow: str
    pytorch: str


async def create(db: Database, lesson: str, step: str, tensorflow: str, pytorch: str) -> Share:
    share = Share(secrets.token_urlsafe(9), lesson, step, tensorflow, pytorch)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO shares (id, lesson, step, tensorflow, pytorch, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (share.id, lesson, step, tensorflow, pytorch, time.time()),
        )

    await db.write(write)
    return share


async def get(db: Database, share_id: str) -> Share | None:
    def read(conn: sqlite3.Connection) -> Share | None:
        row = conn.execute(
            "SELECT id, lesson, step, tensorflow, pytorch FROM shares WHERE id = ?", (share_id,)
        ).fetchone()
        return Share(*row) if row else None

    return await db.read(read)
