"""The learner's pages: the catalog, a lesson, a shared pair."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import DbDep, LessonPageDep, VisibleCatalogDep, get_classes, get_visible_lesson
from app.store import progress, shares
from app.web import names
from app.web.classbanner import teaching_context
from app.web.lesson import lesson_context
from app.web.render import render
from app.web.security import LearnerDep

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def read_catalog(request: Request, learner: LearnerDep, catalog: VisibleCatalogDep,
                       db: DbDep) -> HTMLResponse:
    mine = await progress.for_learner(db, learner)
    summary: dict[str, dict[str, Any]] = {}
    for lesson in catalog.lessons:
        steps = mine.get(lesson.id, {})
        ran = sum(1 for s in lesson.steps if steps.get(s.id, progress.StepProgress()).ran)
        exercises = [s for s in lesson.steps if s.exercise]
        passed = sum(1 for s in exercises if steps.get(s.id, progress.StepProgress()).passed)
        summary[lesson.id] = {
            "viewed": bool(steps), "ran": ran, "exercises": len(exercises), "passed": passed,
            "done": bool(lesson.steps) and ran == len(lesson.steps) and passed == len(exercises),
        }
    resume = None
    last = await progress.last_visit(db, learner)
    visited = catalog.lesson(last.lesson) if last else None
    if last and visited:
        step = visited.step(last.step) if last.step else None
        resume = {"lesson": visited, "step": step.id if step else "",
                  "step_title": step.title if step else ""}
    lessons = catalog.lessons
    return render(request, "pages/catalog.html", {
        "packs": catalog.packs, "progress": summary, "resume": resume,
        "first_lesson": lessons[0] if lessons else None, "errors": catalog.errors,
    })


@router.get("/names", response_class=HTMLResponse)
async def read_names(request: Request) -> HTMLResponse:
    """TensorFlow names and their PyTorch counterparts: errors and lessons link here."""
    return render(request, "pages/names.html", {"names": names.TABLE})


@router.get("/lessons/{lesson_id}", response_class=HTMLResponse)
async def read_lesson(request: Request, lesson_id: str, learner: LearnerDep,
                      page: LessonPageDep, share: str | None = None) -> HTMLResponse:
    lesson = await get_visible_lesson(request, lesson_id)
    if lesson is None:
        raise HTTPException(404, f"No lesson '{lesson_id}'.")
    shared = await shares.get(page.db, share) if share else None
    if shared and shared.lesson != lesson.id:
        shared = None
    codes = ({shared.step: {"tensorflow": shared.tensorflow, "pytorch": shared.pytorch}}
             if shared else {})
    context = await lesson_context(page, lesson, learner, codes=codes)
    if page.seat is None:  # an instructor reading ahead gets a way back to the dashboard
        context.update(await teaching_context(request, get_classes(request), lesson))
    if shared:
        context["shared"] = True
        context["shared_step"] = shared.step  # its notice sits on that step, which runs on load
        context["shared_step_title"] = (lesson.step(shared.step) or lesson.steps[0]).title
    await progress.mark(page.db, learner, lesson.id, "", "viewed")
    return render(request, "pages/lesson.html", context)


@router.get("/s/{share_id}")
async def read_share(share_id: str, db: DbDep) -> RedirectResponse:
    shared = await shares.get(db, share_id)
    if shared is None:
        raise HTTPException(404, "No such shared pair.")
    return RedirectResponse(f"/lessons/{shared.lesson}?share={share_id}#step-{shared.step}",
                            status_code=303)

