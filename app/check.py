"""`sidebyside check PATH` and an uploaded pack's check: every step through the run pipeline.

Each step's pair runs as the site runs it, through `RunService.pair` (the
same requests: the lesson's device and time limit, the step's names, its
graphs drawn), so a pack that passes here behaves the same for learners.
Each step is one check of its pair; an exercise is a second check, through
the site's exercise checker: its solution runs, and its starter runs and
does not pass yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import json
import math
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from app.compare import Comparison
from app.packs.library import relative
from app.packs.loader import MANIFEST, PackError, load_lesson, load_packs
from app.packs.models import Lesson, Pack, Snippet, Step
from app.packs.source import each
from app.pipeline.service import RunService
from app.pipeline.work import StepCheck, StepPair
from app.settings import Settings
from sandbox.fairqueue import Client
from sandbox.pool import Pool
from sandbox.protocol import FRAMEWORKS, RunResult, RunStatus

# Uncapped: the check is the only client and gates itself (one pair per slot).
CLIENT = Client(learner="check", address="local", capped=False)
CHECKS_IN_FLIGHT = 1  # pairs of one upload's check at once on a server: learners' runs go first
_WHERE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):\s*(?P<message>.*)$", re.S)


class CheckStatus(enum.StrEnum):
    ok = "ok"
    mismatch = "mismatch"  # both sides ran, and a compared name differs
    error = "error"  # a run failed, or the step can never be passed


@dataclasses.dataclass
class StepReport:
    """One check of a step: its pair, or its exercise."""

    lesson: str
    step: str
    kind: Literal["pair", "exercise"]
    where: str  # file:line of the step's heading
    status: CheckStatus
    problems: list[str] = dataclasses.field(default_factory=list)  # each starts `file:line:`
    names: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def run_check_command(path: str, as_json: bool = False) -> int:
    settings = Settings()
    try:
        lessons, load_errors = _load(Path(path))
    except PackError as exc:
        lessons, load_errors = [], [str(e) for e in each(exc)]
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
    reports = asyncio.run(check_lessons(lessons, settings)) if lessons else []
    ok = not load_errors and all(r.status == CheckStatus.ok for r in reports)
    if as_json:
        print(json.dumps({"ok": ok, "load_errors": load_errors, "counts": _counts(reports),
                          "results": [dataclasses.asdict(r) for r in reports]}, indent=2))
    else:
        print(format_report(reports, load_errors))
    return 0 if ok else 1


def _load(path: Path) -> tuple[list[Lesson], list[str]]:
    if path.suffix == ".md":  # one lesson, while it is being written
        return [load_lesson(path)], []
    catalog = load_packs(path, strict=False)
    return catalog.lessons, catalog.errors


async def check_lessons(lessons: list[Lesson], settings: Settings) -> list[StepReport]:
    pool = Pool(settings.limits(), size=settings.pool_size, insecure=settings.insecure_no_sandbox)
    await pool.start()
    try:
        # No output cache: a check proves the snippets by running them.
        return await check_on(RunService(pool), lessons)
    finally:
        await pool.stop()


async def check_on(service: RunService, lessons: list[Lesson], client: Client = CLIENT,
                   in_flight: int | None = None) -> list[StepReport]:
    """Every step's pair and exercise, at most `in_flight` pairs at once (one per slot)."""
    # Enough to fill the pool, never enough to overflow its queue; a server
    # checking an upload passes less, so learners' runs keep their turns.
    gate = asyncio.Semaphore(in_flight or service.executor.size)

    async def gated(job: Callable[[], Awaitable[StepReport]]) -> StepReport:
        async with gate:  # the job is made only once it may start (cancelling leaves none)
            return await job()

    jobs = []
    for lesson in lessons:
        for step in lesson.steps:
            jobs.append(gated(functools.partial(check_pair, service, lesson, step, client)))
            if step.exercise:
                jobs.append(gated(functools.partial(check_exercise, service, lesson, step,
                                                    client)))
    return list(await asyncio.gather(*jobs))


async def check_upload(service: RunService, pack: Pack,
                       folder: Path) -> tuple[bool, list[dict[str, Any]]]:
    """An uploaded version's check, behind learners' runs: whether it passed, and its report."""
    client = Client(learner=f"author:{pack.id}", address="local", capped=False)
    reports = await check_on(service, pack.lessons, client, in_flight=CHECKS_IN_FLIGHT)
    return (all(r.status == CheckStatus.ok for r in reports),
            [finding(r, folder) for r in reports])


async def check_pair(service: RunService, lesson: Lesson, step: Step,
                     client: Client = CLIENT) -> StepReport:
    codes: dict[str, str] = {side: step.snippet(side).code for side in FRAMEWORKS}
    pair = await service.pair(StepPair(lesson, step, codes), client)
    report = StepReport(lesson.id, step.id, "pair", f"{step.file}:{step.line}", CheckStatus.ok)
    for side in FRAMEWORKS:
        result = pair.side(side)
        if problem := run_problem(step.snippet(side), result, side):
            report.problems.append(problem)
        elif (target := _draw_target(step, side)) and not any(g.nodes > 0 for g in result.graphs):
            report.problems.append(f"{step.file}:{step.line}: graph: nothing could be drawn "
                                   f"for `{target}` on the {side} side")
    if report.problems:
        report.status = CheckStatus.error
        return report
    if step.compare is None:  # nothing to compare: running cleanly is the whole check
        return report
    report.names = _names(pair.comparison)
    if not pair.comparison.match:
        report.status = CheckStatus.mismatch
    return report


def _draw_target(step: Step, side: str) -> str | None:
    return getattr(step.graph, side) if step.graph is not None else None


async def check_exercise(service: RunService, lesson: Lesson, step: Step,
                         client: Client = CLIENT) -> StepReport:
    ex = step.exercise
    assert ex is not None
    checked = await service.check(StepCheck(lesson, step, ex.starter.code), client)
    report = StepReport(lesson.id, step.id, "exercise", f"{step.file}:{step.line}",
                        CheckStatus.error)
    for label, snippet, result in (("solution", ex.solution, checked.reference),
                                   ("starter", ex.starter, checked.run)):
        if problem := run_problem(snippet, result, label):
            report.problems.append(problem)
    if report.problems:
        return report
    solution = checked.reference
    unbound = [n for n in ex.compare if n not in solution.captured or solution.captured[n].missing]
    if unbound:
        report.problems.append(f"{ex.solution.where()}: the solution binds no "
                               f"{', '.join(unbound)}, so no answer could ever pass")
        return report
    if checked.comparison is not None:
        report.names = _names(checked.comparison)
    if checked.passed:
        report.problems.append(f"{ex.starter.where()}: the starter already matches the "
                               f"solution; it must leave the learner something to do")
        return report
    report.status = CheckStatus.ok
    return report


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


def _counts(reports: list[StepReport]) -> dict[str, int]:
    return {s.value: sum(r.status == s for r in reports) for s in CheckStatus}


def format_report(reports: list[StepReport], load_errors: list[str]) -> str:
    lines = [f"error     {e}" for e in load_errors]
    for r in reports:
        label = f"{r.lesson}/{r.step}" + (" (exercise)" if r.kind == "exercise" else "")
        lines.append(f"{r.status.value:<10}{label}"
                     + (f"  {r.where}" if r.status != CheckStatus.ok else ""))
        lines += [f"          {p}" for p in r.problems]
        if r.status == CheckStatus.mismatch:
            lines += [f"          {m}" for m in mismatches(r)]
    counts = _counts(reports)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    plural = "s" * (len(load_errors) != 1)
    errors = f"; {len(load_errors)} load error{plural}" if load_errors else ""
    lines.append(f"{len(reports)} checks: {summary}{errors}")
    return "\n".join(lines)


def mismatches(report: StepReport) -> list[str]:
    """`name: why` for each compared name that did not match."""
    return [f"{name}: {_describe(c)}" for name, c in report.names.items() if not c["match"]]


def _describe(c: dict[str, Any]) -> str:
    if c["reason"]:
        return str(c["reason"])
    return f"max abs diff {c['max_abs_diff']}"


def finding(report: StepReport, folder: Path) -> dict[str, Any]:
    """One check as an upload's report shows it: the step, what went wrong, and where."""
    where = _WHERE.match(relative(report.problems[0] if report.problems
                                   else report.where + ": ", folder))
    if report.status == CheckStatus.ok:
        message = ""  # an exercise's starter that differs from its solution is as it should be
    elif report.problems:
        message = where["message"] if where else report.problems[0]
    else:
        message = "; ".join(mismatches(report))
    step = report.step + (" (exercise)" if report.kind == "exercise" else "")
    return {"step": f"{report.lesson}/{step}", "status": report.status.value, "message": message,
            "file": where["file"] if where else "", "line": int(where["line"]) if where else None}
