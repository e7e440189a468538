"""A live class's public pages: start one, join one, sign in as its instructor, follow it.

The learner's own page (a lesson with the class banner) is `pages.read_lesson`;
this router serves the banner's event stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.classes import streams
from app.classes.bus import CLASS_WIDE, ClassEvent
from app.classes.errors import ClassRefused, NotTheInstructor
from app.classes.models import CreateClass, JoinClass
from app.deps import ClassesDep, LibraryDep, SeatDep, VisibleCatalogDep, get_classes
from app.routes.classes import client_address, pinned_pack
from app.web import classform
from app.web.classbanner import banner_frames, taught_classes
from app.web.classlinks import (
    first_lesson_url,
    lesson_url,
    set_class_cookie,
    set_teach_cookie,
)
from app.web.render import fragment, render
from app.web.security import AUTHOR_COOKIE, CsrfDep

router = APIRouter(tags=["class pages"], include_in_schema=False)
posts = APIRouter(tags=["class pages"], include_in_schema=False, dependencies=[CsrfDep])


@router.get("/classes/new", response_class=HTMLResponse)
async def read_new_class(request: Request, catalog: VisibleCatalogDep, library: LibraryDep,
                         pack: str | None = None, version: str | None = None) -> HTMLResponse:
    choices = await classform.pack_choices(catalog.packs, library)
    return render(request, "pages/class_new.html", {
        "choices": choices, "form": classform.preselected(choices, pack, version),
        "error": None, "taught": bool(await taught_classes(request, get_classes(request)))})


@posts.post("/classes/new", response_class=HTMLResponse, response_model=None)
async def create_class_page(request: Request, catalog: VisibleCatalogDep, classes: ClassesDep,
                            library: LibraryDep) -> HTMLResponse | RedirectResponse:
    choices = await classform.pack_choices(catalog.packs, library)
    form = classform.typed(await request.form())
    chosen = next((c for c in choices if c.name == form.pack), None)
    try:
        if chosen is None:
            raise ValueError("Choose one of the packs below to teach from.")
        version = chosen.version(form.version) if chosen.uploaded else chosen.versions[0]
        if version is None:
            raise ValueError(f"Version {form.version} of “{chosen.title}” is not ready to "
                             "teach from; choose one of its ready versions.")
        body = CreateClass(pack=chosen.name, version=version.number, title=form.title,
                           lessons=classform.lessons_of(version, form.lessons))
        pinned, lessons = await pinned_pack(body, library, classes,
                                            request.cookies.get(AUTHOR_COOKIE))
        klass, token = await classes.create(pinned, body.title, lessons,
                                            client_address(request))
    except (ValidationError, ClassRefused, HTTPException, ValueError) as exc:
        return render(request, "pages/class_new.html", {
            "choices": choices, "form": form, "error": classform.plain(exc), "taught": False},
            **_refusal(exc, default=422))
    response = RedirectResponse(f"/classes/{klass.code}/dashboard", status_code=303)
    set_teach_cookie(response, klass.code, token)
    return response


@router.get("/join", response_class=HTMLResponse, response_model=None)
async def read_join_code(request: Request,
                         code: str | None = None) -> HTMLResponse | RedirectResponse:
    if code:
        typed = "".join(c for c in code.upper() if c.isalnum())[:12]  # a path segment, no more
        return RedirectResponse(f"/join/{typed}", status_code=303)
    return render(request, "pages/join.html", {"klass": None, "code": "", "error": None})


@router.get("/join/{code}", response_class=HTMLResponse)
async def read_join(request: Request, code: str, classes: ClassesDep,
                    seat: SeatDep) -> HTMLResponse:
    klass = await classes.find_to_join(code, client_address(request))
    context: dict[str, Any] = {"klass": klass, "code": klass.code, "error": None, "name": ""}
    if seat is not None and seat.klass.code == klass.code:  # this browser sits in it already
        context.update(seated=seat.learner,
                       continue_url=lesson_url(request, seat.learner.lesson, seat.learner.step))
    return render(request, "pages/join.html", context)


@posts.post("/join/{code}", response_class=HTMLResponse, response_model=None)
async def create_join_page(request: Request, code: str, classes: ClassesDep,
                           name: Annotated[str, Form(max_length=200)],
                           ) -> HTMLResponse | RedirectResponse:
    klass = await classes.find_to_join(code, client_address(request))
    try:
        seat, token = await classes.join(code, JoinClass(name=name).name,
                                         client_address(request))
    except (ValidationError, ClassRefused) as exc:
        return render(request, "pages/join.html", {"klass": klass, "code": klass.code,
                                                   "error": _say(exc), "name": name},
                      **_refusal(exc, default=422, own_status=True))
    response = RedirectResponse(first_lesson_url(request, seat.klass), status_code=303)
    set_class_cookie(response, token)
    return response


@router.get("/classes/{code}/teach", response_class=HTMLResponse)
async def read_teach(request: Request, code: str) -> HTMLResponse:
    # The same page for any code: whether a class exists is for the join page to say.
    return render(request, "pages/teach.html", {"code": code[:12], "error": None})


@posts.post("/classes/{code}/teach", response_class=HTMLResponse, response_model=None)
async def create_teach_session(request: Request, code: str, classes: ClassesDep,
                               key: Annotated[str, Form(max_length=200)],
                               ) -> HTMLResponse | RedirectResponse:
    try:
        klass = await classes.as_instructor(code, key.strip())
    except NotTheInstructor as exc:
        return render(request, "pages/teach.html", {"code": code[:12], "error": exc.message},
                      status_code=403)
    response = RedirectResponse(f"/classes/{klass.code}/dashboard", status_code=303)
    set_teach_cookie(response, klass.code, key.strip())
    return response


@router.get("/classes/{code}/stream")
async def read_class_stream(request: Request, code: str, seat: SeatDep,
                            classes: ClassesDep) -> Response:
    """The learner's banner: follow-me, messages, pause, end. Nothing about other learners."""
    if seat is None or seat.klass.code != code:
        raise NotTheInstructor("This stream is for the class's learners.")

    async def everything() -> streams.Frames:
        fresh = await classes.seat_again(seat)
        if fresh is None:  # removed by the instructor: the banner gives way to a note
            return [("banner", fragment(request, "partials/class_removed.html",
                                        {"klass": seat.klass}))]
        return banner_frames(request, fresh)

    async def one(_: ClassEvent) -> streams.Frames:
        return await everything()

    def wants(event: ClassEvent) -> bool:
        return event.kind in CLASS_WIDE or (event.kind == "removed"
                                            and event.learner == seat.learner.id)

    return streams.respond(
        classes.streams, client_address(request), f"learner:{seat.learner.id}",
        streams.follow(classes.bus, code, everything, one, wants=wants,
                       ends=lambda event: event.kind == "removed"))


def _refusal(exc: Exception, *, default: int, own_status: bool = False) -> dict[str, Any]:
    """The status and headers a form page answers a refusal with: a limit is 429 with
    Retry-After; otherwise `default`, or with `own_status` the refusal's own status."""
    if not isinstance(exc, ClassRefused):
        return {"status_code": default}
    if exc.retry_after_s:
        return {"status_code": exc.status_code,
                "headers": {"Retry-After": str(exc.retry_after_s)}}
    return {"status_code": exc.status_code if own_status else default}


def _say(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    return exc.message if isinstance(exc, ClassRefused) else str(exc)
