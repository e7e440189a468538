"""Uploaded packs and their versions: who owns each, what its check found."""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import time
from typing import Any

from app.store.db import Database


class VersionStatus(enum.StrEnum):
    checking = "checking"  # uploaded; its steps are running in the sandbox
    ready = "ready"  # every step passed: classes may pin it, it may be published
    failed = "failed"  # its report says which steps failed, and where


@dataclasses.dataclass(frozen=True)
class Version:
    pack: str
    version: int
    title: str
    status: VersionStatus
    report: list[dict[str, Any]]
    created_at: float


@dataclasses.dataclass(frozen=True)
class UploadedPack:
    id: str
    author_digest: str
    published: bool


def _version(row: sqlite3.Row) -> Version:
    return Version(row["pack"], row["version"], row["title"], VersionStatus(row["status"]),
                   json.loads(row["report"]), row["created_at"])


async def owner(db: Database, pack: str) -> UploadedPack | None:
    def read(conn: sqlite3.Connection) -> UploadedPack | None:
        row = conn.execute("SELECT id, author_digest, published FROM uploaded_packs WHERE id = ?",
                           (pack,)).fetchone()
        return UploadedPack(row[0], row[1], bool(row[2])) if row else None

    return await db.read(read)


async def add_version(db: Database, pack: str, author_digest: str, title: str) -> int:
    """Record a new version (checking); the pack is made, owned by this author, if new.

    The caller has checked the author owns an existing pack; the write checks
    again, in its transaction, so two first uploads can't both own one id.
    """
    def write(conn: sqlite3.Connection) -> int:
        now = time.time()
        conn.execute("INSERT OR IGNORE INTO uploaded_packs (id, author_digest, created_at)"
                     " VALUES (?, ?, ?)", (pack, author_digest, now))
        (digest,) = conn.execute("SELECT author_digest FROM uploaded_packs WHERE id = ?",
                                 (pack,)).fetchone()
        if digest != author_digest:
            raise PermissionError(pack)
        (last,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM pack_versions"
                               " WHERE pack = ?", (pack,)).fetchone()
        conn.execute("INSERT INTO pack_versions (pack, version, title, status, created_at)"
                     " VALUES (?, ?, ?, 'checking', ?)", (pack, last + 1, title, now))
        return int(last) + 1

    return await db.write(write)


async def finish_check(db: Database, pack: str, version: int, status: VersionStatus,
                       report: list[dict[str, Any]]) -> None:
    await db.write(lambda conn: conn.execute(
        "UPDATE pack_versions SET status = ?, report = ? WHERE pack = ? AND version = ?",
        (status, json.dumps(report), pack, version)))


async def versions(db: Database, pack: str) -> list[Version]:
    def read(conn: sqlite3.Connection) -> list[Version]:
        rows = conn.execute("SELECT * FROM pack_versions WHERE pack = ? ORDER BY version",
                            (pack,)).fetchall()
        return [_version(row) for row in rows]

    return await db.read(read)


async def checking(db: Database) -> list[Version]:
    """Versions whose check a restart interrupted."""
    def read(conn: sqlite3.Connection) -> list[Version]:
        rows = conn.execute("SELECT * FROM pack_versions WHERE status = 'checking'").fetchall()
        return [_version(row) for row in rows]

    return await db.read(read)


async def visible(db: Database, author_digest: str | None) -> list[UploadedPack]:
    """Published packs, and the caller's own."""
    def read(conn: sqlite3.Connection) -> list[UploadedPack]:
        rows = conn.execute("SELECT id, author_digest, published FROM uploaded_packs"
                            " WHERE published = 1 OR author_digest = ? ORDER BY id",
                            (author_digest or "",)).fetchall()
        return [UploadedPack(r[0], r[1], bool(r[2])) for r in rows]

    return await db.read(read)


async def delete_version(db: Database, pack: str, version: int) -> None:
    await db.write(lambda conn: conn.execute(
        "DELETE FROM pack_versions WHERE pack = ? AND version = ?", (pack, version)))


async def set_published(db: Database, pack: str, published: bool) -> None:
    await db.write(lambda conn: conn.execute(
        "UPDATE uploaded_packs SET published = ? WHERE id = ?", (int(published), pack)))


async def classes_using(db: Database, catalog_pack: str) -> int:
    """Classes made from this version (`name--vN`), ended ones included: they stay readable."""
    def read(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM classes WHERE pack = ?",
                                (catalog_pack,)).fetchone()[0])

    return await db.read(read)
