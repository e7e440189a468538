"""`sidebyside check PATH`: validate packs, run every snippet in the sandbox, report.

Pairs run through `run_pair`, the same path the site uses, under the same
limits, so a pack that passes here behaves the same for learners. Each step
is one check of its pair; an exercise is a second check (its solution runs,
its starter runs and does not pass yet).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from app.compare import Comparison, compare_results
from app.packs.loader import MANIFEST, PackError, load_lesson, load_packs
from app.packs.models import Exercise, Lesson, Snippet, Step
from app.pairs import run_pair
from app.settings import Settings
from sandbox.executor import Executor
from sandbox.fairqueue import Client
from sandbox.pool import Pool
from sandbox.protocol import FRAMEWORKS, RunRequest, RunResult, RunStatus

Status = Literal["ok", "mismatch", "error"]
# Uncapped: the check is the only client and gates itself (one pair per slot).
CLIENT = Client(learner="check", address="local", capped=False)


@dataclasses.dataclass
class Outcome:
    lesson: str
    step: str
    kind: Literal["pair", "exercise"]
    where: str  # file:line of the step's heading
    status: Status
    problems: list[str] = dataclasses.field(default_factory=list)  # each starts `file:line:`
    names: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def run_check_command(path: str, as_json: bool = False) -> int:
    settings = Settings()
    try:
        lessons, load_errors = _load(Path(path))
    except PackError as exc:
        lessons, load_errors = [], [str(exc)]
    if not lessons and not load_errors:
        print(f"sidebyside: no {MANIFEST} under {path}", file=sys.stderr)
        return 2
    if lessons and not settings.insecure_no_sandbox:
        from sandbox.isolation import SandboxUnavailable, check_sandbox

        try:
            check_sandbox()
        except SandboxUnavailable as exc:
            print(f"sidebyside: cannot isolate runs: {exc}", file=sys.stderr)
            return 2
    outcomes = asyncio.run(check_lessons(lessons, settings)) if lessons else []
    ok = not load_errors and all(o.status == "ok" for o in outcomes)
    if as_json:
        print(json.dumps({"ok": ok, "load_errors": load_errors, "counts": _counts(outcomes),
                          "results": [dataclasses.asdict(o) for o in outcomes]}, indent=2))
    else:
        print(format_report(outcomes, load_errors))
    return 0 if ok else 1


def _load(path: Path) -> tuple[list[Lesson], list[str]]:
    if path.suffix == ".md":  # one lesson, while it is being written
        return [load_lesson(path)], []
    catalog = load_packs(path, strict=False)
    return catalog.lessons, catalog.errors


async def check_lessons(lessons: list[Lesson], settings: Settings) -> list[Outcome]:
    pool = Pool(settings.limits(), size=settings.pool_size, insecure=settings.insecure_no_sandbox)
    await pool.start()
    try:
        return await check_on(pool, lessons)
    finally:
        await pool.stop()


async def check_on(pool: Executor, lessons: list[Lesson], client: Client = CLIENT,
                   in_flight: int | None = None) -> list[Outcome]:
    """Every step's pair and exercise, at most `in_flight` pairs at once (one per slot)."""
    # Enough to fill the pool, never enough to overflow its queue; a server
    # checking an upload passes less, so learners' runs keep their turns.
    gate = asyncio.Semaphore(in_flight or pool.size)

    async def gated(job: Callable[[], Awaitable[Outcome]]) -> Outcome:
        async with gate:  # the job is made only once it may start (cancelling leaves none)
            return await job()

    jobs = []
    for lesson in lessons:
        for step in lesson.steps:
            jobs.append(gated(functools.partial(check_pair, pool, lesson, step, client)))
            if step.exercise:
                jobs.append(gated(functools.partial(check_exercise, pool, lesson, step,
                                                    step.exercise, client)))
    return list(await asyncio.gather(*jobs))


async def check_pair(pool: Executor, lesson: Lesson, step: Step,
                     client: Client = CLIENT) -> Outcome:
    spec = step.compare
    result = await run_pair(
        pool, step.tensorflow.code, step.pytorch.code,
        names=spec.names if spec else [], rtol=spec.rtol if spec else 0.0,
        atol=spec.atol if spec else 0.0,
        tensorflow_exprs=spec.exprs("tensorflow") if spec else {},
        pytorch_exprs=spec.exprs("pytorch") if spec else {}, client=client,
        # a graph block is drawn as the site draws it: it must give a real drawing
        graph=step.graph is not None, draw=_draw(step), timeout_s=lesson.timeout_s)
    outcome = Outcome(lesson.id, step.id, "pair", f"{step.file}:{step.line}", "ok")
    for side in FRAMEWORKS:
        if problem := run_problem(step.snippet(side), getattr(result, side), side):
            outcome.problems.append(problem)
        elif (target := _draw(step).get(side)) and not any(
                g.nodes > 0 for g in getattr(result, side).graphs):
            outcome.problems.append(f"{step.file}:{step.line}: graph: nothing could be drawn "
                                    f"for `{target}` on the {side} side")
    if outcome.problems:
        outcome.status = "error"
        return outcome
    if spec is None:  # nothing to compare: running cleanly is the whole check
        return outcome
    outcome.names = _names(result.comparison)
    if not result.comparison.match:
        outcome.status = "mismatch"
    return outcome


def _draw(step: Step) -> dict[str, str]:
    graph = step.graph
    return {side: name for side in FRAMEWORKS
            if graph is not None and (name := getattr(graph, side))}


async def check_exercise(pool: Executor, lesson: Lesson, step: Step, ex: Exercise,
                         client: Client = CLIENT) -> Outcome:
    capture = {name: name for name in ex.compare}
    solution, starter = await asyncio.gather(*(
        pool.run(RunRequest(framework=ex.side, code=s.code, capture=capture,
                            timeout_s=lesson.timeout_s), client=client)
        for s in (ex.solution, ex.starter)))
    outcome = Outcome(lesson.id, step.id, "exercise", f"{step.file}:{step.line}", "error")
    for label, snippet, result in (("solution", ex.solution, solution),
                                   ("starter", ex.starter, starter)):
        if problem := run_problem(snippet, result, label):
            outcome.problems.append(problem)
    if outcome.problems:
        return outcome
    unbound = [n for n in ex.compare if n not in solution.captured or solution.captured[n].missing]
    if unbound:
        outcome.problems.append(f"{ex.solution.where()}: the solution binds no "
                                f"{', '.join(unbound)}, so no answer could ever pass")
        return outcome
    comparison = compare_results(starter, solution, ex.compare, ex.rtol, ex.atol)
    outcome.names = _names(comparison)
    if comparison.match:
        outcome.problems.append(f"{ex.starter.where()}: the starter already matches the "
                                f"solution; it must leave the learner something to do")
        return outcome
    outcome.status = "ok"
    return outcome


def run_problem(snippet: Snippet, result: RunResult, label: str) -> str | None:
    """None when the run went fine; else what went wrong, at its line in the lesson file."""
    if result.status == RunStatus.ok:
        return None
    err = result.error
    line = snippet.file_line(err.line if err else None)
    what = f"{err.type}: {err.message}" if err else "no details"
    status = "" if result.status == RunStatus.error else f"{result.status.value}: "
    return f"{snippet.file}:{line}: {label}: {status}{what}"


def _names(comparison: Comparison) -> dict[str, dict[str, Any]]:
    return {name: {"match": c.match, "max_abs_diff": _finite(c.max_abs_diff),
                   "shapes": c.shapes, "dtypes": c.dtypes, "reason": c.reason}
            for name, c in comparison.names.items()}


def _finite(x: float | None) -> float | str | None:
    # JSON has no NaN or infinity; keep them readable instead of invalid
    return x if x is None or math.isfinite(x) else str(x)


def _counts(outcomes: list[Outcome]) -> dict[str, int]:
    return {s: sum(o.status == s for o in outcomes) for s in ("ok", "mismatch", "error")}


def format_report(outcomes: list[Outcome], load_errors: list[str]) -> str:
    lines = [f"error     {e}" for e in load_errors]
    for o in outcomes:
        label = f"{o.lesson}/{o.step}" + (" (exercise)" if o.kind == "exercise" else "")
        lines.append(f"{o.status:<10}{label}" + (f"  {o.where}" if o.status != "ok" else ""))
        lines += [f"          {p}" for p in o.problems]
        if o.status == "mismatch":
            lines += [f"          {m}" for m in mismatches(o)]
    counts = _counts(outcomes)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    plural = "s" * (len(load_errors) != 1)
    errors = f"; {len(load_errors)} load error{plural}" if load_errors else ""
    lines.append(f"{len(outcomes)} checks: {summary}{errors}")
    return "\n".join(lines)


def mismatches(outcome: Outcome) -> list[str]:
    """`name: why` for each compared name that did not match."""
    return [f"{name}: {_describe(c)}" for name, c in outcome.names.items() if not c["match"]]


def _describe(c: dict[str, Any]) -> str:
    if c["reason"]:
        return str(c["reason"])
    return f"max abs diff {c['max_abs_diff']}"
