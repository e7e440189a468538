"""Runs in flight, so a page can poll for one (the contact-app pattern).

A request that starts a run waits briefly; a fast run (or a cache hit) is
answered at once, a slower one answers with a pending partial that
re-requests `/jobs/{id}` until the job is done. Jobs are kept in memory
for a few minutes after they finish; ids are unguessable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Coroutine
from typing import Any

KEEP_S = 600.0
MAX_JOBS = 2000


@dataclasses.dataclass
class Job:
    id: str
    task: asyncio.Task[Any]
    client: str
    meta: dict[str, Any]
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.task.done()


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def start(self, coro: Coroutine[Any, Any, Any], *, client: str, **meta: Any) -> Job:
        self._prune()
        job = Job(secrets.token_urlsafe(12), asyncio.create_task(coro), client, meta)
        job.task.add_done_callback(_consume)
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def settle(self, job: Job, wait_s: float) -> None:
        """Give the job up to `wait_s` to finish; it keeps running either way."""
        if not job.done:
            await asyncio.wait({job.task}, timeout=wait_s)

    def cancel_all(self) -> None:
        for job in self._jobs.values():
            job.task.cancel()
        self._jobs.clear()

    def _prune(self) -> None:
        now = time.monotonic()
        old = [k for k, j in self._jobs.items() if j.done and now - j.started > KEEP_S]
        for k in old:
            del self._jobs[k]
        while len(self._jobs) >= MAX_JOBS:  # oldest first; dicts keep insertion order
            self._jobs.pop(next(iter(self._jobs)))


def _consume(task: asyncio.Task[Any]) -> None:
    # the exception is read where the job is rendered; this only stops asyncio
    # from logging "exception was never retrieved" for jobs nobody polls again
    if not task.cancelled():
        task.exception()
