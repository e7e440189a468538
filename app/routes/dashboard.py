"""The instructor's dashboard: live roster and step map, a learner's code, class actions.

Signed in by the class's instructor cookie (set from the private link);
every state-changing form also carries the CSRF token. The roster, the map
and the status line arrive as server-sent events, rendered from the same
partials the page includes.
"""

from __future__ import annotations

import functools
import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.classes import roster, streams
from app.classes.bus import ClassEvent
from app.classes.errors import ClassRefused
from app.classes.models import Message
from app.classes.service import ClassService
from app.deps import ClassesDep, DbDep
from app.routes.classes import client_address
from app.store import drafts
from app.store.classes import Class
from app.web.classlinks import join_url, teach_url
from app.web.learnercode import code_sides
from app.web.render import fragment, is_fragment, render
from app.web.security import CsrfDep, teach_cookie

router = APIRouter(prefix="/classes/{code}", tags=["dashboard"], include_in_schema=False)
posts = APIRouter(prefix="/classes/{code}", tags=["dashboard"], include_in_schema=False,
                  dependencies=[CsrfDep])
REFRESH_S = 20.0  # idle times move on even when nothing happens


async def signed_in_class(request: Request, code: str, classes: ClassesDep) -> Class:
    return await classes.as_instructor(code, request.cookies.get(teach_cookie(code.upper())))


TaughtClass = Annotated[Class, Depends(signed_in_class)]


@router.get("/dashboard", response_class=HTMLResponse)
async def read_dashboard(request: Request, klass: TaughtClass,
                         classes: ClassesDep) -> HTMLResponse:
    token = request.cookies.get(teach_cookie(klass.code), "")
    context = await _live_context(request, klass, classes)
    context.update(join_url=join_url(request, klass.code),
                   teach_url=teach_url(request, klass.code, token))
    return render(request, "pages/dashboard.html", context)


@router.get("/live")
async def read_live(request: Request, klass: TaughtClass, classes: ClassesDep) -> Response:
    async def everything() -> streams.Frames:
        context = await _live_context(request, klass, classes)
        return [(name, fragment(request, f"partials/{name}.html", context))
                for name in ("class_status", "roster", "step_map")]

    async def one(_: ClassEvent) -> streams.Frames:
        return await everything()

    return streams.respond(
        classes.streams, client_address(request), f"instructor:{klass.code}",
        streams.follow(classes.bus, klass.code, everything, one, settle_s=streams.SETTLE_S,
                       refresh_s=REFRESH_S))


@router.get("/learners/{learner_id}", response_class=HTMLResponse)
async def read_learner(request: Request, learner_id: str, klass: TaughtClass,
                       classes: ClassesDep, db: DbDep) -> HTMLResponse:
    learner, code = await classes.learner_code(klass, learner_id)
    label = (roster.step_label(classes.catalog, code.lesson, code.step)
             if code.lesson and code.step else "")
    # What they are typing on the step they are reading, run or not (their drafts).
    typing = (await drafts.for_lesson(db, learner.id, learner.lesson)).get(learner.step, {})
    # htmx asks for the dashboard's panel, which follows the learner's runs by itself
    context = {"klass": klass, "learner": learner, "where": label, "sides": code_sides(code),
               "live": is_fragment(request), "typing": typing,
               "typing_where": roster.step_label(classes.catalog, learner.lesson, learner.step)}
    return render(request, "pages/learner_code.html", context,
                  partial="partials/learner_code.html")


@router.get("/qr.svg")
async def read_qr(request: Request, klass: TaughtClass) -> Response:
    out = io.BytesIO()
    segno.make(join_url(request, klass.code), error="m").save(
        out, kind="svg", scale=6, border=2, xmldecl=False, title=f"Join {klass.code}")
    return Response(out.getvalue(), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/export.csv")
async def read_export_page(klass: TaughtClass, classes: ClassesDep) -> Response:
    body = roster.export_csv(await classes.roster(klass), classes.catalog)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="class-{klass.code}.csv"'})


@posts.post("/follow", response_class=HTMLResponse, response_model=None)
async def create_follow_page(request: Request, klass: TaughtClass, classes: ClassesDep,
                             target: Annotated[str, Form(max_length=500)]) -> Response:
    lesson, _, step = target.partition("/")
    return await _act(request, klass, classes, classes.follow(klass, lesson, step))


@posts.post("/message", response_class=HTMLResponse, response_model=None)
async def create_message_page(request: Request, klass: TaughtClass, classes: ClassesDep,
                              text: Annotated[str, Form(max_length=2000)]) -> Response:
    try:
        clean = Message(text=text).text
    except ValueError as exc:
        return await _act(request, klass, classes, None, error=str(exc).splitlines()[-1])
    return await _act(request, klass, classes, classes.message(klass, clean))


@posts.post("/pause", response_class=HTMLResponse, response_model=None)
async def update_pause_page(request: Request, klass: TaughtClass, classes: ClassesDep,
                            paused: Annotated[bool, Form()] = True) -> Response:
    return await _act(request, klass, classes, classes.pause(klass, paused))


@posts.post("/learners/{learner_id}/remove", response_class=HTMLResponse, response_model=None)
async def delete_learner_page(request: Request, learner_id: str, klass: TaughtClass,
                              classes: ClassesDep) -> Response:
    """htmx gets the fresh roster (the stream tells the other dashboards); a form, the page."""
    error = None
    try:
        await classes.remove(klass, learner_id)
    except ClassRefused as exc:
        error = exc.message
    if not is_fragment(request):
        return RedirectResponse(f"/classes/{klass.code}/dashboard", status_code=303)
    context = await _live_context(request, klass, classes)
    context["error"] = error
    return render(request, "partials/roster.html", context)


@posts.post("/end", response_class=HTMLResponse, response_model=None)
async def update_end_page(request: Request, klass: TaughtClass, classes: ClassesDep) -> Response:
    return await _act(request, klass, classes, classes.end(klass))


async def _act(request: Request, klass: Class, classes: ClassService, action: Any,
               error: str | None = None) -> Response:
    """Do the action; htmx gets the fresh status line, a plain form the dashboard again."""
    if action is not None:
        try:
            await action
        except ClassRefused as exc:
            error = exc.message
    if not is_fragment(request):
        return RedirectResponse(f"/classes/{klass.code}/dashboard", status_code=303)
    context = await _live_context(request, klass, classes)
    context["error"] = error
    return render(request, "partials/class_status.html", context)


async def _live_context(request: Request, klass: Class, classes: ClassService) -> dict[str, Any]:
    fresh = await classes.get(klass.code)
    entries = await classes.roster(fresh)
    catalog = classes.catalog
    lessons = [x for x in (catalog.lesson(i) for i in fresh.lessons) if x is not None]
    label = functools.partial(roster.class_step_label, fresh, catalog)
    labels = {(e.lesson, e.step): label(e.lesson, e.step) for e in entries}
    follow_label = None
    if fresh.follow_lesson and fresh.follow_step:
        follow_label = label(fresh.follow_lesson, fresh.follow_step)
    return {"klass": fresh, "roster": entries, "step_labels": labels, "lessons": lessons,
            "follow_label": follow_label,
            "map": roster.step_map(fresh, catalog, entries), "stuck_rule": roster.STUCK_RULE,
            "stuck": sum(e.stuck for e in entries), "error": None}

