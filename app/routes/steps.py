"""What a learner does on a step: run, compare, time, check, diff, share.

Every handler answers with the partial its button targets (or, without
htmx, the whole lesson page with the step's results in place). Runs go
through `app.web.jobs`: quick ones are answered at once, slow ones with a
pending partial that polls `/jobs/{id}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from app.classes import outcomes
from app.classes.errors import ClassRefused
from app.classes.service import ClassService
from app.deps import ClassesDep, ClientDep, PoolDep, SeatDep, get_visible_lesson
from app.deps import get_pages as pages_of
from app.packs.models import Lesson, Step
from app.store import progress, shares
from app.store.class_learners import Seat
from app.web import results
from app.web.diff import changed_lines, diff_snippets
from app.web.jobs import ExerciseCheck, Job, PairRun, SideRun
from app.web.lesson import lesson_context
from app.web.render import is_fragment, render
from app.web.runs import TIMING_REPEAT
from app.web.security import CsrfDep, LearnerDep
from app.web.stepview import StepView, build_step
from sandbox.fairqueue import Client
from sandbox.protocol import FRAMEWORKS, Framework, check_code

router = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[CsrfDep])
STEP = "/lessons/{lesson_id}/steps/{step_id}"
INLINE_WAIT_S = 0.3  # a run done by then is answered at once, without a pending partial


@router.post(STEP + "/run/{side}", response_class=HTMLResponse)
async def create_side_run(request: Request, lesson_id: str, step_id: str, side: Framework,
                          learner: LearnerDep, client: ClientDep, pool: PoolDep, seat: SeatDep,
                          classes: ClassesDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner)
    pages = pages_of(request)
    code = view.side(side).code
    try:
        work = classes.track(seat, lambda: results.run_side(pages.runner, view, side, client),
                             lambda r: outcomes.of_run(r, code, lesson_id, step_id))
    except ClassRefused as exc:
        view.side(side).state, view.side(side).result = "done", outcomes.refused(exc, side)
        return await _respond(request, view, learner, "partials/result.html", side=view.side(side))
    job = pages.jobs.start(work, client=client, meta=SideRun(lesson_id, step_id, side, code))
    await progress.mark(pages.db, learner, lesson_id, step_id, "ran")
    await _settle(request, job)
    results.side_from_job(view.side(side), job, pool.queue.position(client))
    return await _respond(request, view, learner, "partials/result.html", side=view.side(side))


@router.post(STEP + "/pair", response_class=HTMLResponse)
async def create_pair_run(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                          client: ClientDep, pool: PoolDep, seat: SeatDep,
                          classes: ClassesDep) -> HTMLResponse:
    return await _pair(request, lesson_id, step_id, learner, client, pool, seat, classes,
                       repeat=1)


@router.post(STEP + "/time", response_class=HTMLResponse)
async def create_timing_run(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                            client: ClientDep, pool: PoolDep, seat: SeatDep,
                            classes: ClassesDep) -> HTMLResponse:
    return await _pair(request, lesson_id, step_id, learner, client, pool, seat, classes,
                       repeat=TIMING_REPEAT)


async def _pair(request: Request, lesson_id: str, step_id: str, learner: str, client: Client,
                pool: Any, seat: Seat | None, classes: ClassService, repeat: int) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner)
    pages = pages_of(request)
    codes: dict[str, str] = {s.side: s.code for s in view.sides}
    try:
        work = classes.track(seat, lambda: results.run_both(pages.runner, view, client, repeat),
                             lambda r: outcomes.of_pair(r, codes, lesson_id, step_id))
    except ClassRefused as exc:
        for s in view.sides:
            s.state, s.result = "done", outcomes.refused(exc, s.side)
        return await _respond(request, view, learner, "partials/_pair_response.html")
    job = pages.jobs.start(work, client=client, meta=PairRun(lesson_id, step_id, codes, repeat))
    await progress.mark(pages.db, learner, lesson_id, step_id, "ran")
    await _settle(request, job)
    results.pair_from_job(view, job, pool.queue.position(client))
    return await _respond(request, view, learner, "partials/_pair_response.html")


@router.post(STEP + "/check", response_class=HTMLResponse)
async def create_check(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                       client: ClientDep, seat: SeatDep, classes: ClassesDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner)
    if view.exercise is None:
        raise HTTPException(404, "This step has no exercise.")
    pages = pages_of(request)

    async def check_and_record() -> tuple[bool, str, Any, int]:
        passed, message, run = await results.check_exercise(pages.runner, view, client)
        attempts = await progress.add_attempt(pages.db, learner, lesson_id, step_id)
        if passed:
            await progress.mark(pages.db, learner, lesson_id, step_id, "passed")
        return passed, message, run, attempts

    ex = view.exercise
    form = await request.form()
    shown = str(form.get("hints_shown", "0"))
    ex.hints_shown = min(int(shown), len(ex.hints)) if shown.isdigit() else 0
    code = view.side(ex.side).code
    try:
        work = classes.track(seat, check_and_record, lambda r: outcomes.of_check(
            r[0], r[1], r[2], code, lesson_id, step_id))
    except ClassRefused as exc:
        ex.check_state, ex.check_message = "done", exc.message
        return await _respond(request, view, learner, "partials/_check_response.html")
    job = pages.jobs.start(work, client=client,
                           meta=ExerciseCheck(lesson_id, step_id, code, ex.hints_shown))
    await _settle(request, job)
    _check_from_job(view, job)
    return await _respond(request, view, learner, "partials/_check_response.html")


@router.get(STEP + "/exercise", response_class=HTMLResponse)
async def read_exercise(request: Request, lesson_id: str, step_id: str, learner: LearnerDep,
                        hints: int = 0, solution: bool = False) -> HTMLResponse:
    lesson, step = await _step(request, lesson_id, step_id)
    mine = await progress.for_lesson(pages_of(request).db, learner, lesson_id)
    view = build_step(lesson, step, progress=mine.get(step_id))
    if view.exercise is None:
        raise HTTPException(404, "This step has no exercise.")
    ex = view.exercise
    ex.hints_shown = max(0, min(hints, len(ex.hints)))
    ex.show_solution = solution and (ex.attempts > 0 or ex.passed)
    return await _respond(request, view, learner, "partials/exercise.html")


@router.post(STEP + "/diff", response_class=HTMLResponse)
async def create_diff(request: Request, lesson_id: str, step_id: str,
                      learner: LearnerDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner)
    rows = diff_snippets(view.side("tensorflow").code, view.side("pytorch").code)
    return render(request, "partials/diff.html", {"rows": rows, "changed": changed_lines(rows)})


@router.post(STEP + "/share", response_class=HTMLResponse)
async def create_share(request: Request, lesson_id: str, step_id: str,
                       learner: LearnerDep) -> HTMLResponse:
    view = await _posted_view(request, lesson_id, step_id, learner)
    made = await shares.create(pages_of(request).db, lesson_id, step_id,
                               view.side("tensorflow").code, view.side("pytorch").code)
    url = str(request.url_for("read_share", share_id=made.id))
    return await _respond(request, view, learner, "partials/share.html", share=made, share_url=url)


@router.post(STEP + "/viewed", status_code=204)
async def create_step_view(request: Request, lesson_id: str, step_id: str,
                           learner: LearnerDep, seat: SeatDep, classes: ClassesDep) -> Response:
    await _step(request, lesson_id, step_id)
    await progress.mark(pages_of(request).db, learner, lesson_id, step_id, "viewed")
    if seat is not None:  # the instructor's map shows where each learner is reading
        await classes.moved(seat, lesson_id, step_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def read_job(request: Request, job_id: str, learner: LearnerDep,
                   pool: PoolDep) -> HTMLResponse:
    job = pages_of(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "That run is no longer known; run it again.")
    meta = job.meta
    lesson, step = await _step(request, meta.lesson, meta.step)
    position = pool.queue.position(job.client)
    if isinstance(meta, SideRun):
        view = build_step(lesson, step, codes={meta.side: meta.code})
        results.side_from_job(view.side(meta.side), job, position)
        return render(request, "partials/result.html",
                      {"sv": view, "side": view.side(meta.side)})
    if isinstance(meta, PairRun):
        view = build_step(lesson, step, codes=meta.codes)
        results.pair_from_job(view, job, position)
        return render(request, "partials/_pair_response.html", {"sv": view})
    ex_side = step.exercise.side if step.exercise else "pytorch"
    mine = await progress.for_lesson(pages_of(request).db, learner, lesson.id)
    view = build_step(lesson, step, codes={ex_side: meta.code}, progress=mine.get(step.id))
    assert view.exercise is not None
    view.exercise.hints_shown = meta.hints
    _check_from_job(view, job)
    return render(request, "partials/_check_response.html", {"sv": view})


def _check_from_job(view: StepView, job: Job) -> None:
    ex = view.exercise
    assert ex is not None
    ex.job = job.id
    side = view.side(ex.side)
    if not job.done:
        ex.check_state = "pending"
        return
    exc = job.task.exception()
    if exc is not None:
        retry = getattr(exc, "retry_after_s", None)
        if retry is None:
            raise exc
        ex.check_state, ex.retry_after_s = "busy", retry
        return
    passed, message, run, attempts = job.task.result()
    ex.check_state, ex.check_passed, ex.check_message = "done", passed, message
    ex.attempts = attempts
    ex.passed = ex.passed or passed
    side.state, side.result = "done", run


async def _settle(request: Request, job: Job) -> None:
    if is_fragment(request):
        await pages_of(request).jobs.settle(job, INLINE_WAIT_S)
    else:  # a plain form post gets the finished page
        await pages_of(request).jobs.settle(job, 3600)


async def _respond(request: Request, view: StepView, learner: str, partial: str,
                   **extra: Any) -> HTMLResponse:
    if is_fragment(request):
        return render(request, partial, {"sv": view, **extra})
    context = await lesson_context(request, view.lesson, learner, replace=view)
    return render(request, "pages/lesson.html", {**context, **extra})


async def _posted_view(request: Request, lesson_id: str, step_id: str,
                       learner: str) -> StepView:
    lesson, step = await _step(request, lesson_id, step_id)
    form = await request.form()
    codes: dict[str, str] = {}
    for fw in FRAMEWORKS:
        value = form.get(fw)
        if isinstance(value, str):
            try:
                codes[fw] = check_code(value.replace("\r\n", "\n"))
            except ValueError as exc:
                raise HTTPException(422, f"{fw} code: {exc}") from None
    mine = await progress.for_lesson(pages_of(request).db, learner, lesson_id)
    return build_step(lesson, step, codes=codes, progress=mine.get(step_id))


async def _step(request: Request, lesson_id: str, step_id: str) -> tuple[Lesson, Step]:
    """A step of a lesson the caller may see (uploaded packs: see `Library.listed`)."""
    lesson = await get_visible_lesson(request, lesson_id)
    step = lesson.step(step_id) if lesson else None
    if lesson is None or step is None:
        raise HTTPException(404, "No such lesson step.")
    return lesson, step

