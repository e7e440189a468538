"""The instructor's other pages: the projector view of a class, and the classes this
browser teaches.

The projector view is what the room sees: the join code, its QR code, the
class's title and where the class is. It carries nothing about any learner
and no private link, and its stream hears only class-wide events.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.classes import roster, streams
from app.classes.bus import CLASS_WIDE, ClassEvent
from app.classes.service import ClassService
from app.deps import ClassesDep
from app.packs.models import VersionedPackId
from app.routes.classes import client_address
from app.routes.dashboard import TaughtClass
from app.store.classes import Class
from app.web.classbanner import taught_classes
from app.web.classlinks import join_url
from app.web.render import fragment, render

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/classes", response_class=HTMLResponse)
async def read_my_classes(request: Request, classes: ClassesDep) -> HTMLResponse:
    taught = await taught_classes(request, classes)
    return render(request, "pages/my_classes.html", {
        "taught": [(klass, pack_label(classes, klass), _when(klass.created_at))
                   for klass in taught]})


@router.get("/classes/{code}/projector", response_class=HTMLResponse)
async def read_projector(request: Request, klass: TaughtClass,
                         classes: ClassesDep) -> HTMLResponse:
    return render(request, "pages/projector.html",
                  await _projector_context(request, klass, classes))


@router.get("/classes/{code}/projector/live")
async def read_projector_live(request: Request, klass: TaughtClass,
                              classes: ClassesDep) -> Response:
    async def everything() -> streams.Frames:
        context = await _projector_context(request, klass, classes)
        return [("projector", fragment(request, "partials/projector.html", context))]

    async def one(_: ClassEvent) -> streams.Frames:
        return await everything()

    return streams.respond(
        classes.streams, client_address(request), f"instructor:{klass.code}",
        streams.follow(classes.bus, klass.code, everything, one,
                       wants=lambda event: event.kind in CLASS_WIDE))


def _when(epoch_s: float) -> str:
    return time.strftime("%d %b %Y, %H:%M UTC", time.gmtime(epoch_s))


def pack_label(classes: ClassService, klass: Class) -> str:
    """The pack a class teaches from, and which version: "Example pack, version 2"."""
    pack = classes.catalog.pack(klass.pack)
    uploaded = VersionedPackId.parse(klass.pack)
    title = pack.title if pack else (uploaded.pack if uploaded else klass.pack)
    if uploaded is not None:
        return f"{title} ({uploaded.pack}), version {uploaded.version}"
    return f"{title}, version {pack.version}" if pack and pack.version else title


async def _projector_context(request: Request, klass: Class,
                             classes: ClassService) -> dict[str, Any]:
    fresh = await classes.get(klass.code)
    now = None
    if fresh.follow_lesson and fresh.follow_step:
        now = roster.class_step_label(fresh, classes.catalog, fresh.follow_lesson,
                                      fresh.follow_step)
    lesson = classes.catalog.lesson(fresh.lessons[0])
    return {"klass": fresh, "join_url": join_url(request, fresh.code), "now": now,
            "first_lesson": lesson.title if lesson else fresh.lessons[0],
            "pack_label": pack_label(classes, fresh)}
