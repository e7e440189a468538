"""The class banner on a lesson page: a learner's, first rendered and then streamed; and
the instructor's, a way back to the dashboard of the classes this browser teaches."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.classes.errors import ClassRefused
from app.classes.roster import step_label
from app.classes.service import ClassService
from app.packs.models import Catalog, Lesson
from app.store.class_learners import Seat
from app.store.classes import Class
from app.web.render import fragment
from app.web.security import teach_cookie

MOST_TAUGHT = 50  # the teach cookies one request looks at; each is a database read


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


async def taught_classes(request: Request, classes: ClassService) -> list[Class]:
    """The classes whose instructor cookie this browser holds, the newest first.

    Each cookie is checked as the dashboard checks it, so a stale or forged one
    shows nothing.
    """
    prefix = teach_cookie("")
    found: list[Class] = []
    for name, token in list(request.cookies.items())[:MOST_TAUGHT * 4]:
        if not name.startswith(prefix) or len(found) >= MOST_TAUGHT:
            continue
        try:
            found.append(await classes.as_instructor(name.removeprefix(prefix), token))
        except ClassRefused:
            continue
    return sorted(found, key=lambda klass: klass.created_at, reverse=True)


async def teaching_context(request: Request, classes: ClassService,
                           lesson: Lesson) -> dict[str, Any]:
    """The instructor's banner on a lesson page: their open classes, this lesson's first."""
    live = [k for k in await taught_classes(request, classes) if not k.ended]
    live.sort(key=lambda klass: lesson.id not in klass.lessons)  # stable: newest first within
    return {"teaching": live[:3]}
