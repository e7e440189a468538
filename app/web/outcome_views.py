"""Outcomes and jobs of the run pipeline, shown in a step's views.

A step's result panels, its verdict and its exercise are filled from a
cached output, a finished job's outcome, or a job still on its way (then
the partial polls `/jobs/{id}`).
"""

from __future__ import annotations

import asyncio

from app.pipeline.jobs import Job
from app.pipeline.precompute import Viewer
from app.pipeline.service import RunService
from app.pipeline.work import CheckOutcome, Outcome, PairOutcome, StepPair, StepSide
from app.web.stepview import SideView, StepView
from app.web.views import COMPILES, LABELS, failure, timing_chart
from sandbox.fairqueue import QueueFull
from sandbox.protocol import RunResult, RunStatus


async def fill_cached(service: RunService, views: list[StepView], viewer: Viewer, *,
                      precompute: bool = True) -> None:
    """Show the lesson's own outputs at once; start computing missing ones, within caps."""
    wanted = [(v, s) for v in views for s in v.sides if s.code == s.original]
    found = await service.precompute([StepSide(v.lesson, v.step, s.side, s.code)
                                      for v, s in wanted], viewer, start=precompute)
    for (_, side), hit in zip(wanted, found, strict=True):
        if isinstance(hit, RunResult):
            side.result, side.state, side.cached = hit, "done", True
        elif hit is not None:
            side.state, side.job = "pending", hit.id
    for view in views:
        tf, pt = view.side("tensorflow"), view.side("pytorch")
        if tf.cached and pt.cached and tf.result and pt.result and view.step.compare:
            pair = await asyncio.to_thread(PairOutcome.of_step, view.step, tf.result, pt.result)
            show_comparison(view, pair)


def show_comparison(view: StepView, pair: PairOutcome, repeat: int = 1) -> None:
    compare = view.step.compare
    verdict = view.verdict
    verdict.state = "done"
    verdict.repeat = repeat
    if compare:
        verdict.comparison = pair.comparison
        verdict.rtol, verdict.atol = compare.rtol, compare.atol
    results = pair.results()
    verdict.failures = [f"{LABELS[fw]} {why}" for fw, r in results.items()
                        if (why := failure(r))]
    rows = [(LABELS[fw], fw, r.device, r.timings) for fw, r in results.items() if r.timings]
    missing = [(LABELS[fw], fw, failure(r, line=False) or "did not finish")
               for fw, r in results.items() if not r.timings]
    verdict.chart = timing_chart(rows, missing) if rows else None
    verdict.compiles = any(COMPILES.search(s.code) for s in view.sides)


def _failure(job: Job) -> BaseException | None:
    return job.task.exception() if not job.task.cancelled() else asyncio.CancelledError()


def _outcome(job: Job) -> Outcome | QueueFull:
    """A finished job's outcome, or the queue's refusal; anything else was a bug: raised."""
    exc = _failure(job)
    if isinstance(exc, QueueFull):
        return exc
    if exc is not None:
        raise exc
    outcome: Outcome = job.task.result()
    return outcome


def side_from_job(side: SideView, job: Job, position: int | None) -> None:
    side.job = job.id
    if not job.done:
        side.state, side.position = "pending", position
        return
    exc = _failure(job)
    if isinstance(exc, QueueFull):
        side.state, side.retry_after_s = "busy", exc.retry_after_s
    elif exc is not None:
        side.state = "done"
        side.result = RunResult.failed(RunStatus.killed, type(exc).__name__,
                                       "the run was lost; try again", framework=side.side)
    else:
        result = job.task.result()
        assert isinstance(result, RunResult)
        side.state, side.result = "done", result
        side.cached = side.code == side.original


def pair_from_job(view: StepView, job: Job, position: int | None) -> None:
    verdict = view.verdict
    verdict.job = job.id
    if not job.done:
        verdict.state, verdict.position = "pending", position
        for s in view.sides:
            s.state, s.position = "pending", position
            s.job = None  # the verdict polls for both
        return
    pair = _outcome(job)
    if isinstance(pair, QueueFull):
        verdict.state, verdict.retry_after_s = "busy", pair.retry_after_s
        return
    assert isinstance(pair, PairOutcome)
    repeat = job.meta.repeat if isinstance(job.meta, StepPair) else 1
    for s in view.sides:
        s.state, s.result = "done", pair.side(s.side)
        s.cached = s.code == s.original and repeat == 1
    show_comparison(view, pair, repeat)


def check_from_job(view: StepView, job: Job) -> None:
    ex = view.exercise
    assert ex is not None
    ex.job = job.id
    if not job.done:
        ex.check_state = "pending"
        return
    check = _outcome(job)
    if isinstance(check, QueueFull):
        ex.check_state, ex.retry_after_s = "busy", check.retry_after_s
        return
    assert isinstance(check, CheckOutcome)
    ex.check_state, ex.check_passed, ex.check_message = "done", check.passed, check.message
    ex.attempts = check.attempts if check.attempts is not None else ex.attempts
    ex.passed = ex.passed or check.passed
    ex.run, ex.reference, ex.comparison = check.run, check.reference, check.comparison
