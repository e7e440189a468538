"""The one exercise checker: does a run of some code pass an exercise, and why not.

The pages judge a learner's code with it; `sidebyside check` judges a
starter with it (a starter must not pass yet). Both compare the exercise's
names, bare, against a run of the reference solution.
"""

from __future__ import annotations

from app.compare import compare_results
from app.packs.models import Exercise
from app.pipeline.work import CheckOutcome
from sandbox.protocol import RunResult, RunStatus

PASSED = "Every name matches the reference."


def judge(attempt: RunResult, reference: RunResult, exercise: Exercise) -> CheckOutcome:
    if attempt.status != RunStatus.ok:
        err = attempt.error
        line = f" at line {err.line}" if err and err.line else ""
        what = err.type if err else attempt.status.value
        return CheckOutcome(False, f"Your code stopped with {what}{line}.", attempt, reference)
    comparison = compare_results(attempt, reference, exercise.compare, exercise.rtol,
                                 exercise.atol)
    if comparison.match:
        return CheckOutcome(True, PASSED, attempt, reference, comparison)
    reasons = "; ".join(f"{n}: {c.reason}" for n, c in comparison.names.items() if not c.match)
    return CheckOutcome(False, reasons, attempt, reference, comparison)
