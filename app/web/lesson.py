"""Everything the lesson page needs, for the page route and for a step's full-page answer."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.deps import get_catalog as catalog_of
from app.deps import get_pages as pages_of
from app.deps import get_seat
from app.packs.models import Lesson
from app.store import progress
from app.web.classbanner import banner_context, class_pager
from app.web.results import fill_cached
from app.web.stepview import StepView, build_step


async def lesson_context(request: Request, lesson: Lesson, learner: str, *,
                         codes: dict[str, dict[str, str]] | None = None,
                         replace: StepView | None = None) -> dict[str, Any]:
    """Everything pages/lesson.html needs; `replace` puts one step's fresh results in."""
    pages = pages_of(request)
    mine = await progress.for_lesson(pages.db, learner, lesson.id)
    views = [build_step(lesson, step, codes=(codes or {}).get(step.id), progress=mine.get(step.id))
             for step in lesson.steps]
    if replace is not None:
        views = [replace if v.step.id == replace.step.id else v for v in views]
    await fill_cached(pages.runner, pages.jobs, [v for v in views if v is not replace])
    # Previous and next within the lesson's own pack: another pack may not be the
    # learner's to see (uploaded packs), and is another course anyway.
    pack = catalog_of(request).pack(lesson.pack)
    assert pack is not None  # the lesson was found in this catalog
    lessons = pack.lessons
    at = lessons.index(lesson)
    context: dict[str, Any] = {
        "lesson": lesson, "pack": pack, "steps": views,
        "prev_lesson": lessons[at - 1] if at > 0 else None,
        "next_lesson": lessons[at + 1] if at + 1 < len(lessons) else None,
    }
    seat = await get_seat(request)
    if seat is not None:  # a learner in a live class: the banner, and the class's own order
        context.update(banner_context(seat, catalog_of(request)))
        context.update(class_pager(seat, lesson, catalog_of(request)))
    return context
