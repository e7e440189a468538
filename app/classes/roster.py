"""The instructor's view of a class: roster rows, the stuck rule, the step map, CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import time

from app.classes.models import RosterEntry
from app.packs.models import Catalog, Lesson
from app.store.class_learners import Learner
from app.store.classes import Class

# The stuck rule, stated on the dashboard as STUCK_RULE.
STUCK_FAILURES = 3
STUCK_EXERCISE_S = 5 * 60
STUCK_RULE = (f"Stuck: {STUCK_FAILURES} failed runs or checks in a row, or "
              f"{STUCK_EXERCISE_S // 60} minutes on an exercise without passing it.")


def stuck_reason(learner: Learner, catalog: Catalog, now: float) -> str | None:
    if learner.failures_in_row >= STUCK_FAILURES:
        return f"{learner.failures_in_row} failures in a row"
    lesson = catalog.lesson(learner.lesson)
    step = lesson.step(learner.step) if lesson else None
    on_step_s = now - learner.step_since
    if step and step.exercise and not learner.step_passed and on_step_s >= STUCK_EXERCISE_S:
        return f"{int(on_step_s // 60)} min on the exercise"
    return None


def entries(learners: list[Learner], catalog: Catalog,
            now: float | None = None) -> list[RosterEntry]:
    now = time.time() if now is None else now
    out = []
    for learner in learners:
        reason = stuck_reason(learner, catalog, now)
        out.append(RosterEntry(
            id=learner.id, name=learner.name, lesson=learner.lesson, step=learner.step,
            runs=learner.runs, passed=learner.passed, last_status=learner.last_status,
            last_error=learner.last_error, stuck=reason is not None, stuck_reason=reason,
            idle_s=max(0, int(now - learner.active_at))))
    return out


@dataclasses.dataclass(frozen=True)
class MapCell:
    lesson: Lesson
    step_id: str
    number: int
    title: str
    exercise: bool
    names: list[str]
    stuck: int


def step_map(klass: Class, catalog: Catalog, roster: list[RosterEntry]) -> list[list[MapCell]]:
    """Per class lesson, one cell per step with who is on it."""
    rows = []
    for lesson_id in klass.lessons:
        lesson = catalog.lesson(lesson_id)
        if lesson is None:
            continue
        row = []
        for number, step in enumerate(lesson.steps, start=1):
            here = [e for e in roster if e.lesson == lesson.id and e.step == step.id]
            row.append(MapCell(lesson, step.id, number, step.title, step.exercise is not None,
                               [e.name for e in here], sum(e.stuck for e in here)))
        rows.append(row)
    return rows


def step_label(catalog: Catalog, lesson_id: str, step_id: str) -> str:
    lesson = catalog.lesson(lesson_id)
    step = lesson.step(step_id) if lesson else None
    if lesson is None:
        return lesson_id
    if step is None:
        return lesson.title
    return f"{lesson.steps.index(step) + 1}. {step.title}"


def class_step_label(klass: Class, catalog: Catalog, lesson: str, step: str) -> str:
    """"2. Title", with the lesson's place in the class in front when it has several."""
    label = step_label(catalog, lesson, step)
    if len(klass.lessons) > 1 and lesson in klass.lessons:
        return f"L{klass.lessons.index(lesson) + 1} · {label}"
    return label


def export_csv(roster: list[RosterEntry], catalog: Catalog) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "lesson", "step", "runs", "exercises_passed", "last_status",
                     "last_error", "stuck", "idle_s"])
    for e in roster:
        writer.writerow([_cell(e.name), e.lesson, _cell(step_label(catalog, e.lesson, e.step)),
                         e.runs, e.passed, e.last_status or "", _cell(e.last_error or ""),
                         "yes" if e.stuck else "no", e.idle_s])
    return out.getvalue()


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts like a formula; names are the learners' own.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
