"""A run, a pair or an exercise check, as one line on the roster and one code view."""

from __future__ import annotations

from typing import Any

from app.classes.errors import ClassRefused, RunsPaused
from app.store.class_learners import Outcome
from sandbox.protocol import Framework, RunResult, RunStatus

STDOUT_KEPT_CHARS = 4000  # what the instructor's code view shows of a run's output


def error_line(result: RunResult) -> str | None:
    if result.error is None:
        return None if result.status.value == "ok" else result.status.value
    where = f" (line {result.error.line})" if result.error.line else ""
    first = result.error.message.strip().splitlines()[:1]
    return f"{result.error.type}{where}: {first[0] if first else ''}"[:300]


def shown(result: RunResult) -> dict[str, Any]:
    return {"status": result.status.value, "stdout": result.stdout[-STDOUT_KEPT_CHARS:],
            "error": error_line(result),
            "wall_ms": round(result.timings.wall_ms, 1) if result.timings else None}


def of_run(result: RunResult, code: str, lesson: str | None = None,
           step: str | None = None) -> Outcome:
    side = result.framework or "pytorch"
    return Outcome(lesson=lesson, step=step, status=result.status.value,
                   error=error_line(result), failed=result.status.value != "ok",
                   codes={side: code}, result={side: shown(result)})


def of_pair(results: dict[str, RunResult], codes: dict[str, str], lesson: str | None = None,
            step: str | None = None) -> Outcome:
    bad = [r for r in results.values() if r.status.value != "ok"]
    worst = bad[0] if bad else next(iter(results.values()))
    return Outcome(lesson=lesson, step=step, status=worst.status.value,
                   error=error_line(worst) if bad else None, failed=bool(bad), codes=codes,
                   result={side: shown(r) for side, r in results.items()})


def of_check(passed: bool, message: str, run: RunResult, code: str, lesson: str,
             step: str) -> Outcome:
    side = run.framework or "pytorch"
    return Outcome(lesson=lesson, step=step, status="passed" if passed else "failed",
                   error=None if passed else message[:300], failed=not passed, passed=passed,
                   codes={side: code}, result={side: shown(run)})


def refused(exc: ClassRefused, side: Framework) -> RunResult:
    """A run the class did not start, as the page shows it: paused, or one already in flight."""
    kind = "PausedByInstructor" if isinstance(exc, RunsPaused) else "RunInFlight"
    return RunResult.failed(RunStatus.rejected, kind, exc.message, framework=side)
