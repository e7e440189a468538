"""A piece of work and its outcome, as one line on a class roster and one code view."""

from __future__ import annotations

from typing import Any

from app.classes.errors import ClassRefused, RunsPaused
from app.pipeline.work import (
    ApiPair,
    ApiRun,
    CheckOutcome,
    Outcome,
    PairOutcome,
    StepCheck,
    StepPair,
    StepSide,
    Work,
)
from app.store.class_learners import CheckVerdict, RunRecord
from sandbox.protocol import Framework, RunResult, RunStatus

STDOUT_KEPT_CHARS = 4000  # what the instructor's code view shows of a run's output


def error_line(result: RunResult) -> str | None:
    if result.error is None:
        return None if result.status == RunStatus.ok else result.status.value
    where = f" (line {result.error.line})" if result.error.line else ""
    first = result.error.message.strip().splitlines()[:1]
    return f"{result.error.type}{where}: {first[0] if first else ''}"[:300]


def shown(result: RunResult) -> dict[str, Any]:
    return {"status": result.status.value, "stdout": result.stdout[-STDOUT_KEPT_CHARS:],
            "error": error_line(result),
            "wall_ms": round(result.timings.wall_ms, 1) if result.timings else None}


def record_of(work: Work, outcome: Outcome) -> RunRecord:
    lesson, step = ((work.lesson.id, work.step.id)
                    if isinstance(work, StepSide | StepPair | StepCheck) else (None, None))
    if isinstance(outcome, CheckOutcome):
        assert isinstance(work, StepCheck)
        return _check(outcome, work.code, lesson, step)
    if isinstance(outcome, PairOutcome):
        codes: dict[str, str] = (dict(work.codes) if isinstance(work, StepPair) else {
            "tensorflow": work.tensorflow.code, "pytorch": work.pytorch.code}
            if isinstance(work, ApiPair) else {})
        return _pair(outcome.results(), codes, lesson, step)
    code = work.code if isinstance(work, StepSide) else (
        work.request.code if isinstance(work, ApiRun) else "")
    return _run(outcome, code, lesson, step)


def _run(result: RunResult, code: str, lesson: str | None, step: str | None) -> RunRecord:
    side = result.framework or "pytorch"
    return RunRecord(lesson=lesson, step=step, status=result.status,
                     error=error_line(result), failed=result.status != RunStatus.ok,
                     codes={side: code}, result={side: shown(result)})


def _pair(results: dict[Framework, RunResult], codes: dict[str, str], lesson: str | None,
          step: str | None) -> RunRecord:
    bad = [r for r in results.values() if r.status != RunStatus.ok]
    worst = bad[0] if bad else next(iter(results.values()))
    return RunRecord(lesson=lesson, step=step, status=worst.status,
                     error=error_line(worst) if bad else None, failed=bool(bad), codes=codes,
                     result={side: shown(r) for side, r in results.items()})


def _check(outcome: CheckOutcome, code: str, lesson: str | None, step: str | None) -> RunRecord:
    run = outcome.run
    side = run.framework or "pytorch"
    return RunRecord(lesson=lesson, step=step,
                     status=CheckVerdict.passed if outcome.passed else CheckVerdict.failed,
                     error=None if outcome.passed else outcome.message[:300],
                     failed=not outcome.passed, passed=outcome.passed, codes={side: code},
                     result={side: shown(run)})


def refused(exc: ClassRefused, side: Framework) -> RunResult:
    """A run the class did not start, as the page shows it: paused, or one already in flight."""
    kind = "PausedByInstructor" if isinstance(exc, RunsPaused) else "RunInFlight"
    return RunResult.failed(RunStatus.rejected, kind, exc.message, framework=side)
