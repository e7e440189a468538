"""Cached outputs of unedited lesson snippets, keyed by what determines them.

The key hashes the code, the framework, the run options, the framework
versions and the device, so an upgrade or a move to a GPU recomputes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

from app.store.db import Database


def cache_key(**parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


async def get(db: Database, key: str) -> Any | None:
    def read(conn: sqlite3.Connection) -> str | None:
        row = conn.execute("SELECT body FROM outputs WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    body = await db.read(read)
    return json.loads(body) if body is not None else None


async def get_many(db: Database, keys: list[str]) -> dict[str, Any]:
    if not keys:
        return {}

    def read(conn: sqlite3.Connection) -> dict[str, str]:
        marks = ",".join("?" * len(keys))
        rows = conn.execute(f"SELECT key, body FROM outputs WHERE key IN ({marks})", keys)
        return {r[0]: r[1] for r in rows}

    return {k: json.loads(v) for k, v in (await db.read(read)).items()}


async def put(db: Database, key: str, body: Any) -> None:
    text = json.dumps(body)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO outputs (key, body, created_at) VALUES (?, ?, ?)",
            (key, text, time.time()),
        )

    await db.write(write)
