"""The lesson catalog as JSON: the list, and one lesson with its steps.

Exercise solutions stay on the server: the response models below have no
field for them, so they cannot leak through a later change to a handler.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from app.deps import VisibleCatalogDep, get_visible_lesson
from app.packs.models import Compare, GraphSpec, Lesson, Level, Step, VersionedPackId
from app.packs.render import render_markdown
from sandbox.protocol import Framework

router = APIRouter(prefix="/api/lessons", tags=["lessons"])


class LessonSummary(BaseModel):
    id: str
    title: str
    pack: str
    summary: str
    level: Level
    minutes: int
    steps: int


class ExerciseOut(BaseModel):
    side: Framework
    compare: list[str]
    hints: list[str]
    starter: str


class StepOut(BaseModel):
    id: str
    title: str
    prose_html: str
    tensorflow: str
    pytorch: str
    compare: Compare | None
    graph: GraphSpec | None
    pitfall_html: str | None
    exercise: ExerciseOut | None


class LessonOut(BaseModel):
    id: str
    title: str
    pack: str
    summary: str
    level: Level
    minutes: int
    prerequisites: list[str]
    intro_html: str
    steps: list[StepOut]


@router.get("")
def read_lessons(catalog: VisibleCatalogDep, pack: str | None = None) -> list[LessonSummary]:
    """Every lesson the caller may see; `pack`: one pack's (an uploaded pack's name
    gives its versions the caller may see, e.g. `name--v2`, by itself)."""
    lessons = [x for x in catalog.lessons if pack is None or pack == x.pack
               or ((version := VersionedPackId.parse(x.pack)) and version.pack == pack)]
    return [LessonSummary(id=x.id, title=x.title, pack=x.pack, summary=x.summary, level=x.level,
                          minutes=x.minutes, steps=len(x.steps)) for x in lessons]


@router.get("/{lesson_id}", responses={404: {"description": "No lesson has this id"}})
async def read_lesson(lesson_id: str, request: Request) -> LessonOut:
    lesson = await get_visible_lesson(request, lesson_id)
    if lesson is None:
        raise HTTPException(404, f"no lesson with id '{lesson_id}'")
    return lesson_out(lesson)


def lesson_out(lesson: Lesson) -> LessonOut:
    return LessonOut(id=lesson.id, title=lesson.title, pack=lesson.pack, summary=lesson.summary,
                     level=lesson.level, minutes=lesson.minutes,
                     prerequisites=lesson.prerequisites, intro_html=render_markdown(lesson.intro),
                     steps=[_step_out(step) for step in lesson.steps])


def _step_out(step: Step) -> StepOut:
    ex = step.exercise
    return StepOut(
        id=step.id, title=step.title, prose_html=render_markdown(step.prose),
        tensorflow=step.tensorflow.code, pytorch=step.pytorch.code,
        compare=step.compare, graph=step.graph,
        pitfall_html=render_markdown(step.pitfall) if step.pitfall else None,
        exercise=ExerciseOut(side=ex.side, compare=ex.compare, hints=ex.hints,
                             starter=ex.starter.code) if ex else None,
    )
