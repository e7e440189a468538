"""Ports of Keras models: who owns each, what it was asked, what the sandbox reported."""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import time
from typing import Any

from app.store.db import Database


class PortStatus(enum.StrEnum):
    porting = "porting"  # waiting for the sandbox, or running there
    proved = "proved"  # every layer computes what the Keras layer computes
    partial = "partial"  # ported with stubs for unsupported layers, proved up to the first
    failed = "failed"  # no module, or one that computes something else: the report says why


@dataclasses.dataclass(frozen=True)
class PortRecord:
    id: str
    owner_digest: str
    source: str  # the uploaded file's name as sent ('' for a snippet): shown, never a path
    order: dict[str, Any]  # the PortOrder, as JSON
    status: PortStatus
    report: dict[str, Any] | None  # the PortReport, as JSON, once the port ended
    created_at: float


def _record(row: sqlite3.Row) -> PortRecord:
    return PortRecord(row["id"], row["owner_digest"], row["source"],
                      json.loads(row["port_order"]), PortStatus(row["status"]),
                      json.loads(row["report"]) if row["report"] else None, row["created_at"])


async def create(db: Database, port_id: str, owner_digest: str, source: str,
                 order: dict[str, Any]) -> None:
    await db.write(lambda conn: conn.execute(
        "INSERT INTO ports (id, owner_digest, source, port_order, status, created_at)"
        " VALUES (?, ?, ?, ?, 'porting', ?)",
        (port_id, owner_digest, source, json.dumps(order), time.time())))


async def finish(db: Database, port_id: str, status: PortStatus,
                 report: dict[str, Any]) -> None:
    await db.write(lambda conn: conn.execute(
        "UPDATE ports SET status = ?, report = ?, finished_at = ? WHERE id = ?",
        (status, json.dumps(report), time.time(), port_id)))


async def delete(db: Database, port_id: str) -> None:
    await db.write(lambda conn: conn.execute("DELETE FROM ports WHERE id = ?", (port_id,)))


async def get(db: Database, port_id: str) -> PortRecord | None:
    def read(conn: sqlite3.Connection) -> PortRecord | None:
        row = conn.execute("SELECT * FROM ports WHERE id = ?", (port_id,)).fetchone()
        return _record(row) if row else None

    return await db.read(read)


async def owned(db: Database, owner_digest: str, limit: int = 20) -> list[PortRecord]:
    """The owner's latest ports, newest first."""
    def read(conn: sqlite3.Connection) -> list[PortRecord]:
        rows = conn.execute("SELECT * FROM ports WHERE owner_digest = ?"
                            " ORDER BY created_at DESC LIMIT ?", (owner_digest, limit)).fetchall()
        return [_record(row) for row in rows]

    return await db.read(read)


async def unfinished(db: Database) -> list[PortRecord]:
    """Ports a restart interrupted."""
    def read(conn: sqlite3.Connection) -> list[PortRecord]:
        rows = conn.execute("SELECT * FROM ports WHERE status = 'porting'"
                            " ORDER BY created_at").fetchall()
        return [_record(row) for row in rows]

    return await db.read(read)
