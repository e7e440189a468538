"""The schema, as numbered migrations applied in order at start.

`PRAGMA user_version` holds the number of the last one applied. Each runs
in the writer's own transaction with the version bump, so a crash leaves
the file at one version or the next, never between. Migrations are only
ever appended: a database from an older build is brought up to date, one
from a newer build is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

# 1: the tables from before versioning; IF NOT EXISTS lets a file made then
# (at user_version 0, with the tables) take it as a no-op.
_INITIAL = """
CREATE TABLE IF NOT EXISTS progress (
    learner TEXT NOT NULL,
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,          -- '' for the lesson itself
    viewed_at REAL,
    ran_at REAL,
    passed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (learner, lesson, step)
);
CREATE INDEX IF NOT EXISTS progress_recent ON progress (learner, viewed_at);
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,
    tensorflow TEXT NOT NULL,
    pytorch TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outputs (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# 2: live classes. Secrets are stored as SHA-256 digests only.
_CLASSES = """
CREATE TABLE classes (
    code TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    pack TEXT NOT NULL,
    lessons TEXT NOT NULL,          -- JSON list of lesson ids, in class order
    instructor_digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    paused INTEGER NOT NULL DEFAULT 0,
    follow_lesson TEXT,
    follow_step TEXT,
    follow_seq INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    message_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE class_learners (
    id TEXT PRIMARY KEY,            -- public, in the instructor's URLs
    class_code TEXT NOT NULL REFERENCES classes (code),
    token_digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    joined_at REAL NOT NULL,
    active_at REAL NOT NULL,
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,
    step_since REAL NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,
    failures_in_row INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    last_error TEXT,
    last_result TEXT,               -- JSON: what the instructor's code view shows
    code_lesson TEXT,
    code_step TEXT,
    tensorflow TEXT,
    pytorch TEXT
);
CREATE INDEX class_learners_by_class ON class_learners (class_code, joined_at);
CREATE TABLE class_passes (
    learner_id TEXT NOT NULL REFERENCES class_learners (id),
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,
    passed_at REAL NOT NULL,
    PRIMARY KEY (learner_id, lesson, step)
);
"""

# 3: lesson packs uploaded by authors, each upload an immutable version.
_PACKS = """
CREATE TABLE uploaded_packs (
    id TEXT PRIMARY KEY,
    author_digest TEXT NOT NULL,    -- SHA-256 of the author's token
    published INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE pack_versions (
    pack TEXT NOT NULL REFERENCES uploaded_packs (id),
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,           -- checking, ready, failed
    report TEXT NOT NULL DEFAULT '[]',  -- JSON: the check's findings
    created_at REAL NOT NULL,
    PRIMARY KEY (pack, version)
);
"""

# 4: an instructor removes a learner; the row stays (its token must stay
# known, so it can't sit down again), out of the roster and the class.
_REMOVALS = """
ALTER TABLE class_learners ADD COLUMN removed_at REAL;
"""

# 5: a class learner's drafts, per step and side ("exercise" too), so they
# follow the learner to another device and the instructor sees them.
_DRAFTS = """
CREATE TABLE drafts (
    learner_id TEXT NOT NULL REFERENCES class_learners (id),
    lesson TEXT NOT NULL,
    step TEXT NOT NULL,
    side TEXT NOT NULL,             -- tensorflow, pytorch or exercise
    code TEXT NOT NULL,
    saved_at REAL NOT NULL,
    PRIMARY KEY (learner_id, lesson, step, side)
);
"""

# 6: Keras models ported to PyTorch, each private to whoever holds its owner's token;
# the upload and the files a port wrote live under the data dir (ports/<id>/).
_PORTS = """
CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    owner_digest TEXT NOT NULL,     -- SHA-256 of the owner's token
    source TEXT NOT NULL,           -- the uploaded file's name as sent; '' for a snippet
    port_order TEXT NOT NULL,       -- JSON: the PortOrder the sandbox is given
    status TEXT NOT NULL,           -- porting, proved, partial, failed
    report TEXT,                    -- JSON: the PortReport, once the port ended
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX ports_by_owner ON ports (owner_digest, created_at);
"""

MIGRATIONS: tuple[str, ...] = (_INITIAL, _CLASSES, _PACKS, _REMOVALS, _DRAFTS, _PORTS)


class SchemaTooNew(RuntimeError):
    pass


def migrate(conn: sqlite3.Connection) -> int:
    """Apply what is missing; returns the version the file is now at."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise SchemaTooNew(f"database schema {version} is newer than this build's "
                           f"{len(MIGRATIONS)}; upgrade sidebyside")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first, so each migration is its own
        # explicit transaction, version bump included
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
