"""The learners of live classes: where each is, what they ran, what they passed."""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import time
from typing import Any

from app.store import classes
from app.store.classes import Class
from app.store.db import Database
from sandbox.protocol import RunStatus


class CheckVerdict(enum.StrEnum):
    """How an exercise check went, as the roster shows it."""

    passed = "passed"
    failed = "failed"


# A roster's last status: how the learner's last run ended, or their last check's verdict.
RecordStatus = RunStatus | CheckVerdict


def record_status(text: str | None) -> RecordStatus | None:
    if text is None:
        return None
    return CheckVerdict(text) if text in CheckVerdict.__members__ else RunStatus(text)


@dataclasses.dataclass(frozen=True)
class Learner:
    id: str
    class_code: str
    name: str
    joined_at: float
    active_at: float
    lesson: str
    step: str
    step_since: float
    runs: int = 0
    failures_in_row: int = 0
    last_status: RecordStatus | None = None
    last_error: str | None = None
    passed: int = 0  # exercises passed, in all
    step_passed: bool = False  # the exercise of the current step, if it has one


@dataclasses.dataclass(frozen=True)
class Seat:
    """A learner with the class they sit in, as a request finds them by token."""

    learner: Learner
    klass: Class


@dataclasses.dataclass(frozen=True)
class Code:
    lesson: str | None
    step: str | None
    tensorflow: str | None
    pytorch: str | None
    result: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run, pair or check as the roster counts it."""

    lesson: str | None
    step: str | None
    status: RecordStatus
    error: str | None
    failed: bool
    passed: bool = False  # an exercise check that passed
    codes: dict[str, str] = dataclasses.field(default_factory=dict)
    result: dict[str, Any] = dataclasses.field(default_factory=dict)


_LEARNER = """
SELECT l.id, l.class_code, l.name, l.joined_at, l.active_at, l.lesson, l.step, l.step_since,
       l.runs, l.failures_in_row, l.last_status, l.last_error,
       (SELECT count(*) FROM class_passes p WHERE p.learner_id = l.id),
       EXISTS (SELECT 1 FROM class_passes p
               WHERE p.learner_id = l.id AND p.lesson = l.lesson AND p.step = l.step)
FROM class_learners l
"""
_SEATED = "l.removed_at IS NULL"  # a removed learner is in no roster and has no seat


def _learner(row: sqlite3.Row | tuple[object, ...]) -> Learner:
    values = list(row)
    values[10] = record_status(None if values[10] is None else str(values[10]))
    values[13] = bool(values[13])
    return Learner(*values)  # type: ignore[arg-type]


async def join(db: Database, learner: Learner, token_digest: str,
               max_learners: int) -> str | None:
    """Seat a learner; the name they sit under, or None when the class already has
    `max_learners`. A name someone seated already has gets a number: "Eve (2)"."""

    def write(conn: sqlite3.Connection) -> str | None:
        names = [str(name) for (name,) in conn.execute(
            "SELECT name FROM class_learners WHERE class_code = ? AND removed_at IS NULL",
            (learner.class_code,))]
        if len(names) >= max_learners:
            return None
        name = distinct_name(learner.name, {n.casefold() for n in names})
        conn.execute(
            "INSERT INTO class_learners (id, class_code, token_digest, name, joined_at,"
            " active_at, lesson, step, step_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (learner.id, learner.class_code, token_digest, name, learner.joined_at,
             learner.active_at, learner.lesson, learner.step, learner.step_since))
        return name

    return await db.write(write)


def distinct_name(name: str, taken: set[str]) -> str:
    """`name`, or with the first number that sets it apart from the `taken` (casefolded)."""
    number = 1
    found = name
    while found.casefold() in taken:
        number += 1
        found = f"{name} ({number})"
    return found


async def seat(db: Database, token_digest: str) -> Seat | None:
    return await _seat(db, "l.token_digest", token_digest)


async def seat_of(db: Database, learner_id: str) -> Seat | None:
    return await _seat(db, "l.id", learner_id)


async def _seat(db: Database, column: str, value: str) -> Seat | None:
    def read(conn: sqlite3.Connection) -> Seat | None:
        row = conn.execute(_LEARNER + f" WHERE {column} = ? AND {_SEATED}",
                           (value,)).fetchone()
        if row is None:
            return None
        klass = conn.execute(f"SELECT {classes.COLUMNS} FROM classes WHERE code = ?",
                             (row[1],)).fetchone()
        return Seat(_learner(row), classes.from_row(tuple(klass)))

    return await db.read(read)


async def roster(db: Database, code: str) -> list[Learner]:
    def read(conn: sqlite3.Connection) -> list[Learner]:
        rows = conn.execute(_LEARNER + f" WHERE l.class_code = ? AND {_SEATED}"
                            " ORDER BY l.joined_at, l.id", (code,))
        return [_learner(r) for r in rows]

    return await db.read(read)


async def code(db: Database, class_code: str, learner_id: str) -> tuple[Learner, Code] | None:
    def read(conn: sqlite3.Connection) -> tuple[Learner, Code] | None:
        row = conn.execute(_LEARNER + f" WHERE l.class_code = ? AND l.id = ? AND {_SEATED}",
                           (class_code, learner_id)).fetchone()
        if row is None:
            return None
        lesson, step, tf, pt, result = conn.execute(
            "SELECT code_lesson, code_step, tensorflow, pytorch, last_result"
            " FROM class_learners WHERE id = ?", (learner_id,)).fetchone()
        return _learner(row), Code(lesson, step, tf, pt, json.loads(result or "{}"))

    return await db.read(read)


async def move(db: Database, learner_id: str, lesson: str, step: str) -> None:
    """The learner is now looking at `step`. When it changes, the time on a step restarts
    and so does the count of failures in a row: being stuck was about the step left."""
    now = time.time()

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE class_learners SET active_at = ?,"
            " failures_in_row = CASE WHEN lesson = ? AND step = ? THEN failures_in_row"
            " ELSE 0 END,"
            " step_since = CASE WHEN lesson = ? AND step = ? THEN step_since ELSE ? END,"
            " lesson = ?, step = ? WHERE id = ?",
            (now, lesson, step, lesson, step, now, lesson, step, learner_id))

    await db.write(write)


async def remove(db: Database, class_code: str, learner_id: str) -> str | None:
    """Take a learner out of their class; their name, or None if they weren't in it."""

    def write(conn: sqlite3.Connection) -> str | None:
        row = conn.execute("SELECT name FROM class_learners WHERE class_code = ? AND id = ?"
                           " AND removed_at IS NULL", (class_code, learner_id)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE class_learners SET removed_at = ? WHERE id = ?",
                     (time.time(), learner_id))
        return str(row[0])

    return await db.write(write)


async def record(db: Database, learner_id: str, outcome: RunRecord) -> bool:
    """Count a run on the roster; False (nothing counted) once the learner was removed."""
    now = time.time()

    def write(conn: sqlite3.Connection) -> bool:
        # failures in a row count on one step: a run on another one starts afresh
        counted = conn.execute(
            "UPDATE class_learners SET active_at = ?, runs = runs + 1,"
            " failures_in_row = CASE WHEN NOT ? THEN 0"
            " WHEN ? IS NOT NULL AND (lesson IS NOT ? OR step IS NOT ?) THEN 1"
            " ELSE failures_in_row + 1 END,"
            " last_status = ?, last_error = ? WHERE id = ? AND removed_at IS NULL",
            (now, outcome.failed, outcome.step, outcome.lesson, outcome.step, outcome.status,
             outcome.error, learner_id)).rowcount
        if not counted:
            return False
        if outcome.codes:
            # both sides are kept, so a single-side run leaves the other as it was
            conn.execute(
                "UPDATE class_learners SET code_lesson = ?, code_step = ?,"
                " tensorflow = coalesce(?, tensorflow), pytorch = coalesce(?, pytorch),"
                " last_result = ? WHERE id = ?",
                (outcome.lesson, outcome.step, outcome.codes.get("tensorflow"),
                 outcome.codes.get("pytorch"), json.dumps(outcome.result), learner_id))
        if outcome.lesson and outcome.step:
            conn.execute(
                "UPDATE class_learners SET step_since = CASE WHEN lesson = ? AND step = ?"
                " THEN step_since ELSE ? END, lesson = ?, step = ? WHERE id = ?",
                (outcome.lesson, outcome.step, now, outcome.lesson, outcome.step, learner_id))
        if outcome.passed and outcome.lesson and outcome.step:
            conn.execute("INSERT OR IGNORE INTO class_passes VALUES (?, ?, ?, ?)",
                         (learner_id, outcome.lesson, outcome.step, now))
        return True

    return await db.write(write)
