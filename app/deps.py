"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.classes.service import ClassService
from app.packs.library import Library
from app.packs.models import Catalog, Lesson, VersionedPackId
from app.pipeline.service import RunService
from app.ports.service import PortService
from app.settings import Settings
from app.state import AppState
from app.store.class_learners import Seat
from app.store.db import Database
from app.web.lesson import LessonPage
from app.web.security import AUTHOR_COOKIE, CLASS_COOKIE
from sandbox.executor import Executor
from sandbox.fairqueue import Client


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sidebyside  # set once, by app.main.create_app
    return state


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


def get_executor(request: Request) -> Executor:
    return get_state(request).executor


def get_catalog(request: Request) -> Catalog:
    return get_state(request).catalog


def get_runs(request: Request) -> RunService:
    return get_state(request).runs


def get_db(request: Request) -> Database:
    return get_state(request).db


def get_classes(request: Request) -> ClassService:
    return get_state(request).classes


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def get_seat(request: Request) -> Seat | None:
    """The class learner making this request: a Bearer student token, else the class cookie.

    An unknown Bearer token is refused (401); a stale cookie is just ignored,
    so a learner whose class is gone keeps learning on their own.
    """
    service = get_classes(request)
    token = bearer_token(request)
    if token is not None:
        seat = await service.seat(token)
        if seat is None:
            raise HTTPException(401, "Unknown learner token.")
        return seat
    cookie = request.cookies.get(CLASS_COOKIE)
    return await service.seat(cookie) if cookie else None


def get_client_id(request: Request, seat: Annotated[Seat | None, Depends(get_seat)]) -> Client:
    """Who a run is queued for: the class learner, else the learner cookie, else the address.

    The cookie is the client's to choose, so the fair queue also caps by address.
    """
    address = request.client.host if request.client else "unknown"
    if seat is not None and not seat.klass.ended:
        return get_classes(request).client(seat, address)
    cookie = request.cookies.get("sbs_learner")
    learner = f"learner:{cookie[:64]}" if cookie else f"addr:{address}"
    return Client(learner=learner, address=address)


def get_library(request: Request) -> Library:
    return get_state(request).library


def get_ports(request: Request) -> PortService:
    return get_state(request).ports


async def get_visible_catalog(request: Request) -> Catalog:
    """The catalog as this caller may see it: uploaded packs only where `Library` allows
    (their author: the Bearer token or the author cookie; their class; published).
    A Bearer token here may be an author's or a learner's: neither is refused."""
    catalog = get_catalog(request)
    author, class_pack = await _viewer(request)
    packs = await get_library(request).listed(catalog.packs, author, class_pack)
    return catalog.model_copy(update={"packs": packs})


async def get_visible_lesson(request: Request, lesson_id: str) -> Lesson | None:
    """One lesson, if the caller may see it: the check `get_visible_catalog` makes, for
    one pack only (the lesson routes are the hot path)."""
    lesson = get_catalog(request).lesson(lesson_id)
    if lesson is None or VersionedPackId.parse(lesson.pack) is None:
        return lesson
    author, class_pack = await _viewer(request)
    return lesson if await get_library(request).may_view(lesson.pack, author, class_pack) \
        else None


async def _viewer(request: Request) -> tuple[str | None, str | None]:
    """(author token, the pack of the caller's class): a Bearer token may be either."""
    bearer = bearer_token(request)
    author = bearer or request.cookies.get(AUTHOR_COOKIE) or None
    learner = bearer or request.cookies.get(CLASS_COOKIE)
    seat = await get_classes(request).seat(learner) if learner else None
    return author, seat.klass.pack if seat is not None else None


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
RunsDep = Annotated[RunService, Depends(get_runs)]
DbDep = Annotated[Database, Depends(get_db)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
VisibleCatalogDep = Annotated[Catalog, Depends(get_visible_catalog)]
LibraryDep = Annotated[Library, Depends(get_library)]
PortsDep = Annotated[PortService, Depends(get_ports)]
ClientDep = Annotated[Client, Depends(get_client_id)]
ClassesDep = Annotated[ClassService, Depends(get_classes)]
SeatDep = Annotated[Seat | None, Depends(get_seat)]


def get_lesson_page(request: Request, seat: SeatDep) -> LessonPage:
    state = get_state(request)
    address = request.client.host if request.client else "unknown"
    return LessonPage(state.db, state.runs, state.catalog, seat, address,
                      frozenset(state.library.checking))


LessonPageDep = Annotated[LessonPage, Depends(get_lesson_page)]
