"""Turning cached results and jobs into step views, and the runs behind them."""

from __future__ import annotations

import asyncio
from typing import Any

from app.compare import Comparison, compare_results
from app.web.jobs import Job, Jobs, PairRun, SideRun
from app.web.runs import PRECOMPUTE_CLIENT, TIMING_REPEAT, Runner, request_for
from app.web.stepview import SideView, StepView
from app.web.views import LABELS, timing_chart
from sandbox.fairqueue import Client, QueueFull
from sandbox.protocol import FRAMEWORKS, Framework, RunResult


async def fill_cached(runner: Runner, jobs: Jobs, views: list[StepView]) -> None:
    """Show the lesson's own outputs at once; start computing the missing ones."""
    wanted = [(v, s) for v in views for s in v.sides if s.code == s.original]
    found = await runner.cached_many([request_for(v.lesson, v.step, s.side, s.code)
                                      for v, s in wanted])
    for (view, side), result in zip(wanted, found, strict=True):
        if result is not None:
            side.result, side.state, side.cached = result, "done", True
            continue
        req = request_for(view.lesson, view.step, side.side, side.code)
        job = jobs.start(runner.run(req, PRECOMPUTE_CLIENT, original=True),
                         client=PRECOMPUTE_CLIENT,
                         meta=SideRun(view.lesson.id, view.step.id, side.side, side.code))
        side.state, side.job = "pending", job.id
    for view in views:
        tf, pt = view.side("tensorflow"), view.side("pytorch")
        both = tf.cached and pt.cached and tf.result and pt.result
        if both and view.step.compare and not view.exercise:
            show_comparison(view, tf.result, pt.result)  # type: ignore[arg-type]


def show_comparison(view: StepView, tf: RunResult, pt: RunResult, repeat: int = 1) -> None:
    compare = view.step.compare
    verdict = view.verdict
    verdict.state = "done"
    verdict.repeat = repeat
    if compare:
        verdict.comparison = compare_results(tf, pt, compare.names, compare.rtol, compare.atol)
        verdict.rtol, verdict.atol = compare.rtol, compare.atol
    rows = [(LABELS[r.framework or fw], fw, r.device, r.timings)
            for fw, r in (("tensorflow", tf), ("pytorch", pt)) if r.timings]
    verdict.chart = timing_chart(rows) if rows else None  # type: ignore[arg-type]


def side_from_job(side: SideView, job: Job, position: int | None) -> None:
    side.job = job.id
    if not job.done:
        side.state, side.position = "pending", position
        return
    exc = job.task.exception() if not job.task.cancelled() else asyncio.CancelledError()
    if isinstance(exc, QueueFull):
        side.state, side.retry_after_s = "busy", exc.retry_after_s
    elif exc is not None:
        side.state = "done"
        side.result = RunResult.failed("killed", type(exc).__name__,  # type: ignore[arg-type]
                                       "the run was lost; try again", framework=side.side)
    else:
        side.state, side.result = "done", job.task.result()
        side.cached = side.code == side.original


async def run_side(runner: Runner, view: StepView, side: Framework,
                   client: Client) -> RunResult:
    s = view.side(side)
    req = request_for(view.lesson, view.step, side, s.code)
    return await runner.run(req, client, original=s.code == s.original)


async def run_both(runner: Runner, view: StepView, client: Client,
                   repeat: int = 1) -> dict[str, RunResult]:
    async def one(fw: Framework) -> RunResult:
        s = view.side(fw)
        req = request_for(view.lesson, view.step, fw, s.code, repeat=repeat)
        return await runner.run(req, client, original=s.code == s.original and repeat == 1)

    if repeat > 1:  # timed runs one after the other, so neither slows the other down
        return {fw: await one(fw) for fw in FRAMEWORKS}
    tf, pt = await asyncio.gather(one("tensorflow"), one("pytorch"))
    return {"tensorflow": tf, "pytorch": pt}


def pair_from_job(view: StepView, job: Job, position: int | None) -> None:
    verdict = view.verdict
    verdict.job = job.id
    if not job.done:
        verdict.state, verdict.position = "pending", position
        for s in view.sides:
            s.state, s.position = "pending", position
            s.job = None  # the verdict polls for both
        return
    exc = job.task.exception() if not job.task.cancelled() else asyncio.CancelledError()
    if isinstance(exc, QueueFull):
        verdict.state, verdict.retry_after_s = "busy", exc.retry_after_s
        return
    if exc is not None:
        raise exc
    results: dict[str, RunResult] = job.task.result()
    repeat = job.meta.repeat if isinstance(job.meta, PairRun) else 1
    for s in view.sides:
        s.state, s.result = "done", results[s.side]
        s.cached = s.code == s.original and repeat == 1
    show_comparison(view, results["tensorflow"], results["pytorch"], repeat)


async def check_exercise(runner: Runner, view: StepView,
                         client: Client) -> tuple[bool, str, Any]:
    """The learner's code against the reference solution, on the exercise's names."""
    ex = view.step.exercise
    assert ex is not None
    capture = {name: name for name in ex.compare}
    mine = request_for(view.lesson, view.step, ex.side, view.side(ex.side).code, capture=capture)
    reference = request_for(view.lesson, view.step, ex.side, ex.solution.code, capture=capture)
    learner, solution = await asyncio.gather(
        runner.run(mine, client, original=False),
        runner.run(reference, client, original=True),
    )
    if learner.status.value != "ok":
        line = f" at line {learner.error.line}" if learner.error and learner.error.line else ""
        what = learner.error.type if learner.error else learner.status.value
        return False, f"Your code stopped with {what}{line}.", learner
    result: Comparison = compare_results(learner, solution, ex.compare, ex.rtol, ex.atol)
    if result.match:
        return True, "Every name matches the reference.", learner
    reasons = "; ".join(f"{n}: {c.reason}" for n, c in result.names.items() if not c.match)
    return False, reasons, learner


__all__ = ["TIMING_REPEAT", "check_exercise", "fill_cached", "pair_from_job", "run_both",
           "run_side", "show_comparison", "side_from_job"]
