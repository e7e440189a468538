"""The live classes' JSON API: create, join, roster, events, and the instructor's actions.

Instructor calls take `Authorization: Bearer <instructor_token>`: 401
without one, 403 with any other (a learner's included). The pages under
/classes call the same service.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from app.classes import roster, streams
from app.classes.bus import ClassEvent
from app.classes.models import (
    ClassCreated,
    ClassState,
    CreateClass,
    Follow,
    JoinClass,
    Joined,
    LearnerCode,
    Message,
    Pause,
    RosterEntry,
)
from app.classes.service import ClassService
from app.deps import ClassesDep, LibraryDep, bearer_token
from app.packs.library import Library, UploadRefused
from app.store.classes import Class
from app.web.classlinks import first_lesson_url, join_url, set_class_cookie, teach_url

router = APIRouter(prefix="/api/classes", tags=["classes"])

EVENT_STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}},
                      "description": "Server-sent events: `state` and `roster` first (JSON), "
                                     "then one event per change, named by its kind."}}
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "One row per learner."}}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def instructor_class(code: str, request: Request, classes: ClassesDep) -> Class:
    return await classes.as_instructor(code, bearer_token(request))


InstructorClass = Annotated[Class, Depends(instructor_class)]


async def pinned_pack(body: CreateClass, library: Library, classes: ClassService,
                      author: str | None) -> tuple[str, list[str] | None]:
    """The catalog pack a new class uses, and its lessons' catalog ids.

    A bundled pack is itself. An uploaded pack is one version, pinned for the
    class's life: a ready one, published or the caller's own (`author`: their
    token); its lessons are named as in the author's files.
    """
    bundled = classes.catalog.pack(body.pack)
    if bundled is not None and "--" not in body.pack:
        if body.version is not None:
            raise HTTPException(422, f"'{body.pack}' is a bundled pack: it has no versions.")
        return body.pack, body.lessons
    try:
        pinned = await library.class_pack(body.pack, body.version, author)
    except UploadRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    lessons = [f"{pinned}--{lesson}" for lesson in body.lessons] if body.lessons else None
    return pinned, lessons


@router.post("", status_code=201, response_model=ClassCreated,
             responses={404: {}, 409: {}, 422: {}, 429: {}})
async def create_class(body: CreateClass, request: Request, classes: ClassesDep,
                       library: LibraryDep) -> ClassCreated:
    """Start a class from a bundled pack, or from a version of an uploaded one (the
    author's Bearer token lets them teach from their own unpublished pack)."""
    pack, lessons = await pinned_pack(body, library, classes, bearer_token(request))
    klass, token = await classes.create(pack, body.title, lessons, client_address(request))
    return ClassCreated(code=klass.code, join_url=join_url(request, klass.code),
                        instructor_url=teach_url(request, klass.code, token),
                        instructor_token=token)


@router.post("/{code}/join", status_code=201, response_model=Joined)
async def create_join(code: str, body: JoinClass, request: Request, response: Response,
                      classes: ClassesDep) -> Joined:
    seat, token = await classes.join(code, body.name, client_address(request))
    set_class_cookie(response, token)  # a browser calling the API is in the class too
    return Joined(student_token=token, lesson_url=first_lesson_url(request, seat.klass))


@router.get("/{code}", response_model=ClassState)
async def read_class(klass: InstructorClass, classes: ClassesDep) -> ClassState:
    return await class_state(classes, klass)


@router.get("/{code}/roster", response_model=list[RosterEntry])
async def read_roster(klass: InstructorClass, classes: ClassesDep) -> list[RosterEntry]:
    return await classes.roster(klass)


@router.get("/{code}/learners/{learner_id}", response_model=LearnerCode)
async def read_learner_code(learner_id: str, klass: InstructorClass,
                            classes: ClassesDep) -> LearnerCode:
    learner, code = await classes.learner_code(klass, learner_id)
    return LearnerCode(id=learner.id, name=learner.name, lesson=code.lesson, step=code.step,
                       tensorflow=code.tensorflow, pytorch=code.pytorch, result=code.result)


@router.delete("/{code}/learners/{learner_id}", status_code=204, response_class=Response,
               responses={404: {}, 409: {}})
async def delete_learner(learner_id: str, klass: InstructorClass, classes: ClassesDep) -> None:
    """Take a learner out of the class: their token no longer seats them, their runs stop
    counting here, and they leave the roster and the export. They may join again, as
    someone new on the roster."""
    await classes.remove(klass, learner_id)


@router.get("/{code}/events", response_class=StreamingResponse,
            responses={**EVENT_STREAM, 429: {"description": "Too many streams held open: "
                                                            "per address, per token, or in all"}})
async def read_events(request: Request, klass: InstructorClass,
                      classes: ClassesDep) -> Response:
    async def everything() -> streams.Frames:
        state = await class_state(classes, klass)
        entries = await classes.roster(klass)
        return [("state", state.model_dump_json()),
                ("roster", "[" + ",".join(e.model_dump_json() for e in entries) + "]")]

    async def one(event: ClassEvent) -> streams.Frames:
        return [(event.kind, event.model_dump_json(exclude_none=True))]

    return streams.respond(classes.streams, client_address(request),
                           f"instructor:{klass.code}",
                           streams.follow(classes.bus, klass.code, everything, one))


@router.post("/{code}/follow", response_model=ClassState)
async def create_follow(body: Follow, klass: InstructorClass,
                        classes: ClassesDep) -> ClassState:
    await classes.follow(klass, body.lesson, body.step)
    return await class_state(classes, klass)


@router.post("/{code}/message", response_model=ClassState)
async def create_message(body: Message, klass: InstructorClass,
                         classes: ClassesDep) -> ClassState:
    await classes.message(klass, body.text)
    return await class_state(classes, klass)


@router.post("/{code}/pause", response_model=ClassState)
async def update_pause(klass: InstructorClass, classes: ClassesDep,
                       body: Pause | None = None) -> ClassState:
    await classes.pause(klass, body.paused if body else True)
    return await class_state(classes, klass)


@router.post("/{code}/end", response_model=ClassState)
async def update_end(klass: InstructorClass, classes: ClassesDep) -> ClassState:
    await classes.end(klass)
    return await class_state(classes, klass)


@router.get("/{code}/export.csv", response_class=Response, responses=CSV)
async def read_export(klass: InstructorClass, classes: ClassesDep) -> Response:
    body = roster.export_csv(await classes.roster(klass), classes.catalog)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="class-{klass.code}.csv"'})


async def class_state(classes: ClassService, klass: Class) -> ClassState:
    fresh = await classes.get(klass.code)
    entries = await classes.roster(fresh)
    return ClassState(code=fresh.code, title=fresh.title, lessons=list(fresh.lessons),
                      paused=fresh.paused, ended=fresh.ended, follow_lesson=fresh.follow_lesson,
                      follow_step=fresh.follow_step, message=fresh.message,
                      learners=len(entries))
