"""The class banner on a learner's lesson page, first rendered and then streamed."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.classes.roster import step_label
from app.packs.models import Catalog, Lesson
from app.store.class_learners import Seat
from app.web.render import fragment


def banner_context(seat: Seat, catalog: Catalog) -> dict[str, Any]:
    klass = seat.klass
    follow = None
    if klass.follow_lesson and klass.follow_step:
        follow = {"lesson": klass.follow_lesson, "step": klass.follow_step,
                  "label": step_label(catalog, klass.follow_lesson, klass.follow_step)}
    return {"seat": seat, "klass": klass, "follow": follow}


def banner_frames(request: Request, seat: Seat) -> list[tuple[str, str]]:
    catalog: Catalog = request.app.state.sidebyside.catalog  # app.state.AppState
    return [("banner", fragment(request, "partials/class_banner.html",
                                banner_context(seat, catalog)))]


def class_pager(seat: Seat, lesson: Lesson, catalog: Catalog) -> dict[str, Lesson | None]:
    """Previous and next lesson within the class's own list, in its order."""
    ids = list(seat.klass.lessons)
    if lesson.id not in ids:
        return {"prev_lesson": None, "next_lesson": catalog.lesson(ids[0])}
    at = ids.index(lesson.id)
    return {"prev_lesson": catalog.lesson(ids[at - 1]) if at > 0 else None,
            "next_lesson": catalog.lesson(ids[at + 1]) if at + 1 < len(ids) else None}
