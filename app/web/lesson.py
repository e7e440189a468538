"""Everything the lesson page needs, for the page route and for a step's full-page answer."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.packs.models import Catalog, Lesson
from app.pipeline.precompute import Viewer
from app.pipeline.service import RunService
from app.store import drafts, progress
from app.store.class_learners import Seat
from app.store.db import Database
from app.web.classbanner import banner_context, class_pager
from app.web.outcome_views import fill_cached
from app.web.stepview import StepView, build_step


@dataclasses.dataclass(frozen=True)
class LessonPage:
    """What a lesson page is drawn from: the store, the runs, the catalog, the class seat,
    who is looking, and the uploaded versions still being checked (their check computes
    their outputs: a view adds no runs of its own)."""

    db: Database
    runs: RunService
    catalog: Catalog
    seat: Seat | None
    address: str
    checking: frozenset[str]


async def lesson_context(page: LessonPage, lesson: Lesson, learner: str, *,
                         codes: dict[str, dict[str, str]] | None = None,
                         replace: StepView | None = None) -> dict[str, Any]:
    """Everything pages/lesson.html needs; `replace` puts one step's fresh results in."""
    mine = await progress.for_lesson(page.db, learner, lesson.id)
    if page.seat is not None and not codes:  # a class learner's drafts, from any device
        codes = await drafts.for_lesson(page.db, page.seat.learner.id, lesson.id)
    views = [build_step(lesson, step, codes=(codes or {}).get(step.id), progress=mine.get(step.id))
             for step in lesson.steps]
    if replace is not None:
        views = [replace if v.step.id == replace.step.id else v for v in views]
    viewer = Viewer(learner, page.address, lesson.pack)
    await fill_cached(page.runs, [v for v in views if v is not replace], viewer,
                      precompute=lesson.pack not in page.checking)
    # Previous and next within the lesson's own pack: another pack may not be the
    # learner's to see (uploaded packs), and is another course anyway.
    pack = page.catalog.pack(lesson.pack)
    assert pack is not None  # the lesson was found in this catalog
    lessons = pack.lessons
    at = lessons.index(lesson)
    context: dict[str, Any] = {
        "lesson": lesson, "pack": pack, "steps": views,
        "prev_lesson": lessons[at - 1] if at > 0 else None,
        "next_lesson": lessons[at + 1] if at + 1 < len(lessons) else None,
    }
    seat = page.seat
    if seat is not None:  # a learner in a live class: the banner, and the class's own order
        context.update(banner_context(seat, page.catalog))
        context.update(class_pager(seat, lesson, page.catalog))
    return context
