"""View models of a lesson step: what each partial needs to render."""

from __future__ import annotations

import dataclasses
from typing import Literal

from app.compare import Comparison
from app.packs.models import Lesson, Step
from app.pipeline.requests import original_code
from app.store.progress import StepProgress
from app.web.views import LABELS, TimingChart
from sandbox.protocol import FRAMEWORKS, Framework, RunResult, ValueInfo

MIN_ROWS, MAX_ROWS = 8, 30
# What a result (or a verdict) shows: nothing yet, a run on its way, the
# queue's refusal, or the result itself.
ViewState = Literal["empty", "pending", "busy", "done"]
CheckState = Literal["none", "pending", "busy", "done"]


@dataclasses.dataclass
class SideView:
    side: Framework
    code: str
    original: str
    result: RunResult | None = None
    state: ViewState = "empty"
    job: str | None = None
    position: int | None = None
    retry_after_s: int = 0
    cached: bool = False

    @property
    def label(self) -> str:
        return LABELS[self.side]


@dataclasses.dataclass
class VerdictView:
    state: ViewState = "empty"
    comparison: Comparison | None = None
    rtol: float | None = None
    atol: float | None = None
    chart: TimingChart | None = None
    failures: list[str] = dataclasses.field(default_factory=list)  # sides that didn't run through
    compiles: bool = False  # a side compiles or traces: its first call is not its steady state
    repeat: int = 1
    job: str | None = None
    position: int | None = None
    retry_after_s: int = 0


@dataclasses.dataclass
class ExerciseView:
    side: Framework
    compare: list[str]
    hints: list[str]
    solution_code: str
    code: str  # what the exercise's own editor holds
    starter: str  # what it starts with
    hints_shown: int = 0
    attempts: int = 0
    passed: bool = False
    show_solution: bool = False
    check_state: CheckState = "none"
    check_passed: bool = False
    check_message: str = ""
    job: str | None = None
    retry_after_s: int = 0
    run: RunResult | None = None  # the checked code's run
    reference: RunResult | None = None  # the solution's
    comparison: Comparison | None = None  # theirs against it, name by name

    @property
    def label(self) -> str:
        return LABELS[self.side]

    def expected(self, name: str) -> tuple[ValueInfo | None, ValueInfo | None]:
        """The learner's value of `name` and the reference's, as the runs described them."""
        def find(result: RunResult | None) -> ValueInfo | None:
            return next((v for v in result.values if v.name == name), None) if result else None
        return find(self.run), find(self.reference)


@dataclasses.dataclass
class StepView:
    lesson: Lesson
    step: Step
    number: int
    sides: list[SideView]
    verdict: VerdictView
    exercise: ExerciseView | None
    progress: StepProgress

    @property
    def rows(self) -> int:
        lines = max(s.code.count("\n") + 1 for s in self.sides)
        return max(MIN_ROWS, min(MAX_ROWS, lines))

    def side(self, framework: str) -> SideView:
        return next(s for s in self.sides if s.side == framework)


def build_step(lesson: Lesson, step: Step, *, codes: dict[str, str] | None = None,
               progress: StepProgress | None = None) -> StepView:
    progress = progress or StepProgress()
    sides = []
    for fw in FRAMEWORKS:
        original = original_code(step, fw)
        sides.append(SideView(fw, (codes or {}).get(fw, original), original))
    exercise = None
    if step.exercise:
        ex = step.exercise
        exercise = ExerciseView(ex.side, ex.compare, ex.hints, ex.solution.code,
                                (codes or {}).get("exercise", ex.starter.code), ex.starter.code,
                                attempts=progress.attempts, passed=progress.passed)
    number = lesson.steps.index(step) + 1
    return StepView(lesson, step, number, sides, VerdictView(), exercise, progress)
