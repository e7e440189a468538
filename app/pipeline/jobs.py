"""Runs in flight as jobs, so a page can poll for one (the contact-app pattern).

A request that starts a run waits briefly; a fast run (or a cache hit) is
answered at once, a slower one answers with a pending partial that
re-requests `/jobs/{id}` until the job is done. Jobs are kept in memory
for a few minutes after they finish, within a budget of bytes (a run's
result can be large, so a count would bound nothing); ids are unguessable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from app.bytecache import ByteLRU
from app.pipeline.cache import result_bytes
from app.pipeline.work import CheckOutcome, PairOutcome, StepPair, StepWork
from sandbox.fairqueue import Client
from sandbox.protocol import RunResult

KEEP_S = 600.0
DONE_BUDGET_BYTES = 64 * 2**20  # finished jobs, oldest-polled out first
# Running jobs are bounded by the fair queue (a refused run ends its job at
# once); this only stops a runaway from growing the table without end.
MAX_RUNNING = 2000
JOB_OVERHEAD_BYTES = 2048  # the task, its meta, the result's Python objects


@dataclasses.dataclass
class Job:
    id: str
    task: asyncio.Task[Any]
    client: Client
    meta: StepWork  # what was asked: a polled job is shown from it
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.task.done()


class Jobs:
    def __init__(self, budget_bytes: int = DONE_BUDGET_BYTES) -> None:
        self._running: dict[str, Job] = {}
        self._done: ByteLRU[str, Job] = ByteLRU(budget_bytes)

    @property
    def done_bytes(self) -> int:
        return self._done.nbytes

    def start(self, coro: Coroutine[Any, Any, Any], *, client: Client, meta: StepWork) -> Job:
        self._prune()
        job = Job(secrets.token_urlsafe(12), asyncio.create_task(coro), client, meta)
        self._running[job.id] = job
        job.task.add_done_callback(lambda _: self._finished(job))
        return job

    def get(self, job_id: str) -> Job | None:
        job = self._running.get(job_id)
        return job if job is not None else self._done.get(job_id)

    async def settle(self, job: Job, wait_s: float) -> None:
        """Give the job up to `wait_s` to finish; it keeps running either way."""
        if not job.done:
            await asyncio.wait({job.task}, timeout=wait_s)

    def cancel_all(self) -> None:
        for job in self._running.values():
            job.task.cancel()
        self._running.clear()
        self._done.clear()

    def _finished(self, job: Job) -> None:
        _consume(job.task)
        if self._running.pop(job.id, None) is not None:  # else dropped meanwhile
            # weighed once, now its result is known and can no longer grow
            self._done.put(job.id, job, job_bytes(job))

    def _prune(self) -> None:
        now = time.monotonic()
        for key, job in self._done.items():
            if now - job.started > KEEP_S:
                self._done.pop(key)
        while len(self._running) >= MAX_RUNNING:  # oldest first; dicts keep insertion order
            self._running.pop(next(iter(self._running)))


def job_bytes(job: Job) -> int:
    """About what a finished job holds: the posted code and its outcome (the lesson and
    step it names are the catalog's, shared with every other job)."""
    task = job.task
    outcome = task.result() if not task.cancelled() and task.exception() is None else None
    return JOB_OVERHEAD_BYTES + code_bytes(job.meta) + outcome_bytes(outcome)


def code_bytes(work: StepWork) -> int:
    if isinstance(work, StepPair):
        return sum(len(code) for code in work.codes.values())
    return len(work.code)


def outcome_bytes(outcome: object) -> int:
    if isinstance(outcome, RunResult):
        return result_bytes(outcome)
    if isinstance(outcome, PairOutcome):
        return result_bytes(outcome.tensorflow) + result_bytes(outcome.pytorch)
    if isinstance(outcome, CheckOutcome):
        return result_bytes(outcome.run) + result_bytes(outcome.reference)
    return 64


def _consume(task: asyncio.Task[Any]) -> None:
    # the exception is read where the job is rendered; this only stops asyncio
    # from logging "exception was never retrieved" for jobs nobody polls again
    if not task.cancelled():
        task.exception()
