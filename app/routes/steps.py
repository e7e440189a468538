"""What a learner does on a step: run, compare, time, check, diff, share.

Every handler answers with the partial its button targets (or, without
htmx, the whole lesson page with the step's results in place). Runs go
through `app.pipeline.jobs`: quick ones are answered at once, slow ones
with a pending partial whose page listens on `/jobs/{id}/events` for the
finished partial (pushed the moment the job ends), or, where it can't,
asks `/jobs/{id}` again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from app.classes import streams
from app.classes.errors import ClassRefused
from app.deps import (
    ClassesDep,
    ClientDep,
    DbDep,
    ExecutorDep,
    LessonPageDep,
    RunsDep,
    SeatDep,
    get_visible_lesson,
)
from app.packs.models import Lesson, Step
from app.pipeline import records
from app.pipeline.jobs import Job
from app.pipeline.requests import TIMING_REPEAT, original_code
from app.pipeline.service import RunService
from app.pipeline.work import CheckOutcome, Outcome, StepCheck, StepPair, StepSide
from app.store import drafts, progress, shares
from app.store.class_learners import Seat
from app.store.db import Database
from app.web import outcome_views
from app.web.diff import changed_lines, diff_snippets
from app.web.lesson import LessonPage, lesson_context
from app.web.render import is_fragment, render
from app.web.security import CsrfDep, LearnerDep
from app.web.stepview import StepView, build_step
from sandbox.executor import Executor
from sandbox.fairqueue import Client
from sandbox.protocol import FRAMEWORKS, Framework, check_code

router = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[CsrfDep])
STEP = "/lessons/{lesson_id}/steps/{step_id}"
INLINE_WAIT_S = 0.3  # a run done by then is answered at once, without a pending partial


@router.post(STEP + "/run/{side}", response_class=HTMLResponse)
async def create_side_run(request: Request, lesson_id: str, step_id: str, side: Framework,
                          learner: LearnerDep, client: ClientDep, runs: RunsDep,
                          executor: ExecutorDep, seat: SeatDep,
                          page: LessonPageDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner, page.db)
    work = StepSide(view.lesson, view.step, side, view.side(side).code)
    try:
        job = runs.start(work, client, seat)
    except ClassRefused as exc:
        view.side(side).state, view.side(side).result = "done", records.refused(exc, side)
        return await _respond(request, page, view, learner, "partials/result.html",
                              side=view.side(side))
    await progress.mark(page.db, learner, lesson_id, step_id, "ran")
    await _settle(request, runs, job)
    outcome_views.side_from_job(view.side(side), job, executor.queue.position(client))
    return await _respond(request, page, view, learner, "partials/result.html",
                          side=view.side(side))


@router.post(STEP + "/pair", response_class=HTMLResponse)
async def create_pair_run(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                          client: ClientDep, runs: RunsDep, executor: ExecutorDep,
                          seat: SeatDep, page: LessonPageDep) -> HTMLResponse:
    return await _pair(request, lesson_id, step_id, learner, client, runs, executor, seat, page,
                       repeat=1)


@router.post(STEP + "/time", response_class=HTMLResponse)
async def create_timing_run(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                            client: ClientDep, runs: RunsDep, executor: ExecutorDep,
                            seat: SeatDep, page: LessonPageDep) -> HTMLResponse:
    return await _pair(request, lesson_id, step_id, learner, client, runs, executor, seat, page,
                       repeat=TIMING_REPEAT)


async def _pair(request: Request, lesson_id: str, step_id: str, learner: str, client: Client,
                runs: RunService, executor: Executor, seat: Seat | None, page: LessonPage,
                repeat: int) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner, page.db)
    work = StepPair(view.lesson, view.step, {s.side: s.code for s in view.sides}, repeat)
    try:
        job = runs.start(work, client, seat)
    except ClassRefused as exc:
        for s in view.sides:
            s.state, s.result = "done", records.refused(exc, s.side)
        return await _respond(request, page, view, learner, "partials/_pair_response.html")
    await progress.mark(page.db, learner, lesson_id, step_id, "ran")
    await _settle(request, runs, job)
    outcome_views.pair_from_job(view, job, executor.queue.position(client))
    return await _respond(request, page, view, learner, "partials/_pair_response.html")


@router.post(STEP + "/check", response_class=HTMLResponse)
async def create_check(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                       client: ClientDep, runs: RunsDep, seat: SeatDep,
                       page: LessonPageDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner, page.db)
    if view.exercise is None:
        raise HTTPException(404, "This step has no exercise.")
    ex = view.exercise
    form = await request.form()
    shown = str(form.get("hints_shown", "0"))
    ex.hints_shown = min(int(shown), len(ex.hints)) if shown.isdigit() else 0

    async def record_attempt(outcome: Outcome) -> Outcome:
        assert isinstance(outcome, CheckOutcome)
        attempts = await progress.add_attempt(page.db, learner, lesson_id, step_id)
        if outcome.passed:
            await progress.mark(page.db, learner, lesson_id, step_id, "passed")
        return dataclasses.replace(outcome, attempts=attempts)

    work = StepCheck(view.lesson, view.step, ex.code, ex.hints_shown)
    try:
        job = runs.start(work, client, seat, after=record_attempt)
    except ClassRefused as exc:
        ex.check_state, ex.check_message = "done", exc.message
        return await _respond(request, page, view, learner, "partials/_check_response.html")
    await _settle(request, runs, job)
    outcome_views.check_from_job(view, job)
    return await _respond(request, page, view, learner, "partials/_check_response.html")


@router.get(STEP + "/exercise", response_class=HTMLResponse)
async def read_exercise(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                        page: LessonPageDep, hints: int = 0,
                        solution: bool = False) -> HTMLResponse:
    lesson, step = await _step(request, lesson_id, step_id)
    mine = await progress.for_lesson(page.db, learner, lesson_id)
    view = build_step(lesson, step, progress=mine.get(step_id))
    if view.exercise is None:
        raise HTTPException(404, "This step has no exercise.")
    ex = view.exercise
    ex.hints_shown = max(0, min(hints, len(ex.hints)))
    ex.show_solution = solution and (ex.attempts > 0 or ex.passed)
    return await _respond(request, page, view, learner, "partials/exercise.html")


@router.post(STEP + "/diff", response_class=HTMLResponse)
async def create_diff(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                      db: DbDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner, db)
    rows = diff_snippets(view.side("tensorflow").code, view.side("pytorch").code)
    return render(request, "partials/diff.html", {"rows": rows, "changed": changed_lines(rows)})


@router.post(STEP + "/share", response_class=HTMLResponse)
async def create_share(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                       page: LessonPageDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner, page.db)
    made = await shares.create(page.db, lesson_id, step_id,
                               view.side("tensorflow").code, view.side("pytorch").code)
    url = str(request.url_for("read_share", share_id=made.id))
    return await _respond(request, page, view, learner, "partials/share.html", share=made,
                          share_url=url)


@router.post(STEP + "/draft", status_code=204)
async def create_draft(request: Request, lesson_id: str, step_id: str, seat: SeatDep,
                       db: DbDep) -> Response:
    """A class learner's editor, kept on the server (form: `side`, `code`)."""
    if seat is None:
        raise HTTPException(403, "Drafts are kept on the server for learners in a class; "
                                 "this browser keeps yours.")
    lesson, step = await _step(request, lesson_id, step_id)
    form = await request.form()
    side, code = form.get("side"), form.get("code")
    if side not in drafts.SIDES or not isinstance(code, str):
        raise HTTPException(422, f"A draft needs a side ({', '.join(drafts.SIDES)}) and code.")
    try:
        code = check_code(code.replace("\r\n", "\n"))
    except ValueError as exc:
        raise HTTPException(422, f"{side} code: {exc}") from None
    if side == "exercise":
        original = step.exercise.starter.code if step.exercise else None
        if original is None:
            raise HTTPException(422, "This step has no exercise.")
    else:
        original = original_code(step, "tensorflow" if side == "tensorflow" else "pytorch")
    await drafts.save(db, seat.learner.id, lesson.id, step.id, side,
                      None if code == original else code)
    return Response(status_code=204)


@router.post(STEP + "/viewed", status_code=204)
async def create_step_view(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                           seat: SeatDep, classes: ClassesDep, db: DbDep) -> Response:
    await _step(request, lesson_id, step_id)
    await progress.mark(db, learner, lesson_id, step_id, "viewed")
    if seat is not None:  # the instructor's map shows where each learner is reading
        await classes.moved(seat, lesson_id, step_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def read_job(request: Request, job_id: str, learner: LearnerDep, runs: RunsDep,
                   executor: ExecutorDep, db: DbDep) -> HTMLResponse:
    job = runs.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "That run is no longer known; run it again.")
    work = job.meta
    lesson, step = await _step(request, work.lesson.id, work.step.id)  # still the caller's to see
    position = executor.queue.position(job.client)
    if isinstance(work, StepSide):
        view = build_step(lesson, step, codes={work.side: work.code})
        outcome_views.side_from_job(view.side(work.side), job, position)
        return render(request, "partials/result.html",
                      {"sv": view, "side": view.side(work.side)})
    if isinstance(work, StepPair):
        view = build_step(lesson, step, codes=dict(work.codes))
        outcome_views.pair_from_job(view, job, position)
        return render(request, "partials/_pair_response.html", {"sv": view})
    mine = await progress.for_lesson(db, learner, lesson.id)
    view = build_step(lesson, step, codes={"exercise": work.code}, progress=mine.get(step.id))
    assert view.exercise is not None
    view.exercise.hints_shown = work.hints
    outcome_views.check_from_job(view, job)
    return render(request, "partials/_check_response.html", {"sv": view})


@router.get("/jobs/{job_id}/events")
async def read_job_events(request: Request, job_id: str, learner: LearnerDep, runs: RunsDep,
                          executor: ExecutorDep, db: DbDep, client: ClientDep,
                          classes: ClassesDep) -> Response:
    """One event, `done`, carrying the partial `/jobs/{id}` would answer, the moment the
    job ends: the page needn't poll. Comments keep the stream alive meanwhile."""
    job = runs.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "That run is no longer known; run it again.")

    async def events() -> AsyncIterator[str]:
        while not job.done:
            finished, _ = await asyncio.wait({job.task}, timeout=streams.KEEPALIVE_S)
            if not finished:
                yield ": running\n\n"
        partial = await read_job(request, job_id, learner, runs, executor, db)
        yield streams.encode("done", bytes(partial.body).decode())

    return streams.respond(classes.streams, client.address, f"learner:{learner}", events())


async def _settle(request: Request, runs: RunService, job: Job) -> None:
    if is_fragment(request):
        await runs.jobs.settle(job, INLINE_WAIT_S)
    else:  # a plain form post gets the finished page
        await runs.jobs.settle(job, 3600)


async def _respond(request: Request, page: LessonPage, view: StepView, learner: str,
                   partial: str, **extra: Any) -> HTMLResponse:
    if is_fragment(request):
        return render(request, partial, {"sv": view, **extra})
    context = await lesson_context(page, view.lesson, learner, replace=view)
    return render(request, "pages/lesson.html", {**context, **extra})


async def _posted_view(request: Request, lesson_id: str, step_id: str, learner: str,
                       db: Database) -> StepView:
    lesson, step = await _step(request, lesson_id, step_id)
    form = await request.form()
    codes: dict[str, str] = {}
    for field in (*FRAMEWORKS, "exercise"):  # the two sides, and an exercise's own editor
        value = form.get(field)
        if isinstance(value, str):
            try:
                codes[field] = check_code(value.replace("\r\n", "\n"))
            except ValueError as exc:
                raise HTTPException(422, f"{field} code: {exc}") from None
    mine = await progress.for_lesson(db, learner, lesson_id)
    return build_step(lesson, step, codes=codes, progress=mine.get(step_id))


async def _step(request: Request, lesson_id: str, step_id: str) -> tuple[Lesson, Step]:
    """A step of a lesson the caller may see (uploaded packs: see `Library.listed`)."""
    lesson = await get_visible_lesson(request, lesson_id)
    step = lesson.step(step_id) if lesson else None
    if lesson is None or step is None:
        raise HTTPException(404, "No such lesson step.")
    return lesson, step
