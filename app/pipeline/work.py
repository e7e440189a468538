"""What a caller asks the pipeline for, and what it gets back, as types.

A piece of work names everything the pipeline needs to build its requests:
a step's side, a step's pair, an exercise check, or a request an API client
built itself. Its outcome is a `RunResult`, a `PairOutcome` or a
`CheckOutcome`. The pages keep a piece of work as their job's meta, so a
polled job is shown from what it was asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pydantic import BaseModel

from app.compare import Comparison, compare_results
from app.packs.models import Lesson, Step
from app.pipeline.requests import original_code
from sandbox.protocol import FRAMEWORKS, Framework, RunRequest, RunResult


@dataclasses.dataclass(frozen=True)
class StepSide:
    """One side of a step, as the learner's editor holds it."""

    lesson: Lesson
    step: Step
    side: Framework
    code: str

    @property
    def original(self) -> bool:
        """The lesson's own code: answered from (and kept in) the output cache."""
        return self.code == original_code(self.step, self.side)


@dataclasses.dataclass(frozen=True)
class StepPair:
    """Both sides of a step, compared on the step's names; `repeat` > 1 times them."""

    lesson: Lesson
    step: Step
    codes: Mapping[str, str]  # framework -> code
    repeat: int = 1

    def side(self, side: Framework) -> StepSide:
        return StepSide(self.lesson, self.step, side, self.codes[side])


@dataclasses.dataclass(frozen=True)
class StepCheck:
    """A learner's code for a step's exercise, against the reference solution."""

    lesson: Lesson
    step: Step
    code: str
    hints: int = 0  # how many hints the learner had open (the answer shows them again)


@dataclasses.dataclass(frozen=True)
class ApiRun:
    """A request an API client built itself (`POST /api/runs`)."""

    request: RunRequest


@dataclasses.dataclass(frozen=True)
class ApiPair:
    """Two requests an API client built, compared on its names (`POST /api/pairs`)."""

    tensorflow: RunRequest
    pytorch: RunRequest
    names: list[str]
    rtol: float
    atol: float


StepWork = StepSide | StepPair | StepCheck
Work = StepWork | ApiRun | ApiPair


class PairOutcome(BaseModel):
    """Both sides' results and whether they computed the same values."""

    tensorflow: RunResult
    pytorch: RunResult
    comparison: Comparison

    @classmethod
    def of(cls, tensorflow: RunResult, pytorch: RunResult, names: list[str], rtol: float,
           atol: float) -> PairOutcome:
        return cls(tensorflow=tensorflow, pytorch=pytorch,
                   comparison=compare_results(tensorflow, pytorch, names, rtol, atol))

    @classmethod
    def of_step(cls, step: Step, tensorflow: RunResult, pytorch: RunResult) -> PairOutcome:
        """Compared on the step's names (none: a step without a compare block never matches)."""
        spec = step.compare
        return cls.of(tensorflow, pytorch, spec.names if spec else [],
                      spec.rtol if spec else 0.0, spec.atol if spec else 0.0)

    def side(self, side: Framework) -> RunResult:
        return self.tensorflow if side == "tensorflow" else self.pytorch

    def results(self) -> dict[Framework, RunResult]:
        return {fw: self.side(fw) for fw in FRAMEWORKS}


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """An exercise check: passed or not, why, and the two runs behind it."""

    passed: bool
    message: str
    run: RunResult  # the code that was checked
    reference: RunResult  # the solution's run
    comparison: Comparison | None = None  # None when the checked code did not finish
    attempts: int | None = None  # the learner's checks so far, where the pages count them


Outcome = RunResult | PairOutcome | CheckOutcome
