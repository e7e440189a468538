"""The run service: every run the site makes, from whichever caller, goes through here.

    page / API / check ──work──> RunService ──RunRequest──> Executor (pool or workers)
                                   │ route: a GPU wish falls back to a CPU while none serves
                                   │ cache: a lesson's own code answers from the output cache
                                   │ share: identical requests in flight wait for one run
                                   │ track: a class learner's work counts on the roster
                                   └ jobs:  page work runs as a job the page polls

Work is typed (`app.pipeline.work`): a step's side, pair or exercise check,
or a request an API client built. Requests are built in one place
(`app.pipeline.requests`), exercises judged in one (`app.pipeline.exercise`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from app.classes.service import ClassService
from app.pipeline import records
from app.pipeline.cache import OutputCache
from app.pipeline.exercise import judge
from app.pipeline.jobs import Job, Jobs
from app.pipeline.precompute import PRECOMPUTE_CLIENT, Precompute, Viewer
from app.pipeline.requests import RunOptions, build_request, exercise_options
from app.pipeline.work import (
    ApiPair,
    ApiRun,
    CheckOutcome,
    Outcome,
    PairOutcome,
    StepCheck,
    StepPair,
    StepSide,
    StepWork,
    Work,
)
from app.store.class_learners import Seat
from sandbox.executor import Executor
from sandbox.fairqueue import Client
from sandbox.protocol import RunRequest, RunResult

T = TypeVar("T", bound=Outcome)


class RunService:
    def __init__(self, executor: Executor, cache: OutputCache | None = None,
                 classes: ClassService | None = None, jobs: Jobs | None = None) -> None:
        self.executor, self.cache, self.classes = executor, cache, classes
        self.jobs = jobs or Jobs()
        self.precomputing = Precompute(executor)
        self._in_flight: dict[str, asyncio.Future[RunResult]] = {}

    # ---- one request --------------------------------------------------------------

    def routed(self, request: RunRequest) -> RunRequest:
        """A lesson's wish for a GPU falls back to a CPU while no GPU worker is registered."""
        if request.device == "gpu" and not self.executor.serves("gpu"):
            return request.model_copy(update={"device": "cpu"})
        return request

    def cache_key(self, request: RunRequest) -> str:
        return OutputCache.key(self.routed(request), self.executor.context)

    async def run(self, request: RunRequest, client: Client, *, cached: bool = False) -> RunResult:
        """Run one request; `cached` (a lesson's own code) answers from and fills the cache,
        and waits for an identical run already in flight instead of starting another."""
        request = self.routed(request)
        if not cached:
            return await self.executor.run(request, client)
        key = OutputCache.key(request, self.executor.context)
        if key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        # Claimed before the first await, so an identical request arriving during the
        # cache read waits for this one instead of starting its own.
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            hit = (await self.cache.get_many([key]))[0] if self.cache is not None else None
            result = hit if hit is not None else await self.executor.run(request, client)
            if hit is None and self.cache is not None:
                await self.cache.put(key, result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._in_flight[key]

    async def cached(self, requests: list[RunRequest]) -> list[RunResult | None]:
        if self.cache is None:
            return [None] * len(requests)
        return await self.cache.get_many([self.cache_key(r) for r in requests])

    # ---- work -----------------------------------------------------------------------

    async def side(self, work: StepSide, client: Client, repeat: int = 1) -> RunResult:
        request = build_request(work.side, work.code, lesson=work.lesson, step=work.step,
                                options=RunOptions(repeat=repeat))
        return await self.run(request, client, cached=work.original and repeat == 1)

    async def pair(self, work: StepPair, client: Client) -> PairOutcome:
        tf, pt = work.side("tensorflow"), work.side("pytorch")
        if work.repeat > 1:  # timed runs one after the other, so neither slows the other down
            tf_result = await self.side(tf, client, work.repeat)
            pt_result = await self.side(pt, client, work.repeat)
        else:
            tf_result, pt_result = await asyncio.gather(self.side(tf, client),
                                                        self.side(pt, client))
        # Comparing is CPU work on values the runs chose: off the event loop.
        return await asyncio.to_thread(PairOutcome.of_step, work.step, tf_result, pt_result)

    async def check(self, work: StepCheck, client: Client) -> CheckOutcome:
        """The code against the reference solution, on the exercise's names."""
        ex = work.step.exercise
        assert ex is not None, "a check is made only on a step with an exercise"
        options = exercise_options(work.step)
        attempt, reference = (build_request(ex.side, code, lesson=work.lesson, step=work.step,
                                            options=options)
                              for code in (work.code, ex.solution.code))
        mine, solution = await asyncio.gather(self.run(attempt, client),
                                              self.run(reference, client, cached=True))
        return await asyncio.to_thread(judge, mine, solution, ex)

    async def api_pair(self, work: ApiPair, client: Client) -> PairOutcome:
        tf, pt = await asyncio.gather(self.run(work.tensorflow, client),
                                      self.run(work.pytorch, client))
        return await asyncio.to_thread(PairOutcome.of, tf, pt, work.names, work.rtol, work.atol)

    def perform(self, work: Work, client: Client) -> Coroutine[Any, Any, Outcome]:
        match work:
            case StepSide():
                return self.side(work, client)
            case StepPair():
                return self.pair(work, client)
            case StepCheck():
                return self.check(work, client)
            case ApiPair():
                return self.api_pair(work, client)
            case _:
                return self.run(work.request, client)

    # ---- class tracking and jobs ------------------------------------------------------

    def tracked(self, work: Work, client: Client, seat: Seat | None,
                make: Callable[[], Coroutine[Any, Any, T]]) -> Coroutine[Any, Any, T]:
        """The work to start, counted on the class roster when the learner sits in a class.

        Raises `ClassRefused` (runs paused, a run already in flight) before any work is made.
        """
        if self.classes is None:
            return make()
        return self.classes.track(seat, make, lambda outcome: records.record_of(work, outcome))

    async def api_run(self, request: RunRequest, client: Client, seat: Seat | None) -> RunResult:
        return await self.tracked(ApiRun(request), client, seat,
                                  lambda: self.run(request, client))

    async def api_pair_tracked(self, work: ApiPair, client: Client,
                               seat: Seat | None) -> PairOutcome:
        return await self.tracked(work, client, seat, lambda: self.api_pair(work, client))

    def start(self, work: StepWork, client: Client, seat: Seat | None,
              after: Callable[[Outcome], Coroutine[Any, Any, Outcome]] | None = None) -> Job:
        """Page work as a job: tracked, then `after` (the pages' bookkeeping) on its outcome."""
        async def done() -> Outcome:
            outcome = await self.perform(work, client)
            return await after(outcome) if after is not None else outcome

        return self.jobs.start(self.tracked(work, client, seat, done), client=client, meta=work)

    async def precompute(self, sides: list[StepSide], viewer: Viewer, *,
                         start: bool = True) -> list[RunResult | Job | None]:
        """Each side's cached output, else a job computing it behind every learner's runs,
        else None: over the viewer's or the pack's cap, or told not to `start` any."""
        requests = [build_request(s.side, s.code, lesson=s.lesson, step=s.step) for s in sides]
        found = await self.cached(requests)
        shown: list[RunResult | Job | None] = []
        for side, hit in zip(sides, found, strict=True):
            if hit is None and start and self.precomputing.admit(viewer):
                shown.append(self.jobs.start(self._precompute(side, viewer),
                                             client=PRECOMPUTE_CLIENT, meta=side))
            else:
                shown.append(hit)
        return shown

    async def _precompute(self, side: StepSide, viewer: Viewer) -> RunResult:
        try:
            async with self.precomputing.turn():
                return await self.side(side, PRECOMPUTE_CLIENT)
        finally:
            self.precomputing.release(viewer)

    async def stop(self) -> None:
        self.jobs.cancel_all()
        for future in self._in_flight.values():
            future.cancel()
