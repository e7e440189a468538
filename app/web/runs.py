"""Running a step's snippets for the pages: requests, the output cache, checks.

A snippet that is exactly the lesson's code answers from the output cache
(SQLite, keyed by code + framework + run options + versions + device);
anything edited runs live. Opening a lesson computes its missing outputs
in the background, queued under their own client id so the fair queue
puts a learner's own runs ahead of them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from typing import Any

import numpy as np

from app.packs.models import Lesson, Step
from app.store import outputs
from app.store.db import Database
from app.web.bytecache import ByteLRU
from sandbox.executor import Executor
from sandbox.fairqueue import Client
from sandbox.protocol import CapturedArray, Framework, RunRequest, RunResult

log = logging.getLogger("sidebyside.pages")

# Uncapped: a lesson has more missing outputs than one learner may queue, and
# what it queues is bounded by the lesson. Its own learner id keeps it in the
# round-robin, so a learner's own runs still come first.
PRECOMPUTE_CLIENT = Client(learner="precompute", address="server", capped=False)
TIMING_REPEAT = 10
_MAX_CACHED_BYTES = 4 * 1024 * 1024
MEMO_BUDGET_BYTES = 64 * 2**20


def request_for(lesson: Lesson, step: Step, side: Framework, code: str, *, repeat: int = 1,
                capture: dict[str, str] | None = None) -> RunRequest:
    draw = getattr(step.graph, side) if step.graph else None
    if capture is None:
        capture = step.compare.exprs(side) if step.compare else {}
    return RunRequest(framework=side, code=code, repeat=repeat, graph=True, draw=draw,
                      capture=capture, device=lesson.device, timeout_s=lesson.timeout_s)


@dataclasses.dataclass
class Runner:
    pool: Executor
    db: Database
    inflight: dict[str, asyncio.Future[RunResult]] = dataclasses.field(default_factory=dict)
    # parsed cache entries: the lesson page reads the same few on every view
    memo: ByteLRU[str, RunResult] = dataclasses.field(
        default_factory=lambda: ByteLRU(MEMO_BUDGET_BYTES))

    def routed(self, req: RunRequest) -> RunRequest:
        """A lesson's wish for a GPU falls back to a CPU while no GPU worker is registered."""
        if req.device == "gpu" and not self.pool.serves("gpu"):
            return req.model_copy(update={"device": "cpu"})
        return req

    def key(self, req: RunRequest) -> str:
        req, ctx = self.routed(req), self.pool.context
        return outputs.cache_key(request=req.model_dump(mode="json"),
                                 versions=ctx.versions, device=ctx.device)

    async def cached(self, req: RunRequest) -> RunResult | None:
        return (await self.cached_many([req]))[0]

    async def cached_many(self, reqs: list[RunRequest]) -> list[RunResult | None]:
        keys = [self.key(r) for r in reqs]
        # Hits are taken before loading the misses, which may push them out of the memo.
        found = {k: hit for k in keys if (hit := self.memo.get(k)) is not None}
        missing = [k for k in keys if k not in found]
        for key, body in (await outputs.get_many(self.db, missing)).items():
            found[key] = _load(body)
            self._remember(key, found[key])
        return [found.get(k) for k in keys]

    def _remember(self, key: str, result: RunResult) -> None:
        self.memo.put(key, result, result_bytes(result))

    async def run(self, req: RunRequest, client: Client, *, original: bool) -> RunResult:
        """Run a snippet; the lesson's own code (`original`) goes through the cache."""
        req = self.routed(req)
        if not original:
            return await self.pool.run(req, client)
        key = self.key(req)
        if key in self.inflight:  # the same code is already running: share its result
            return await asyncio.shield(self.inflight[key])
        hit = await self.cached(req)
        if hit is not None:
            return hit
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            result = await self.pool.run(req, client)
            if result.status.value in ("ok", "error"):  # not timeouts or a lost sandbox
                body = _dump(result)
                if len(str(body)) < _MAX_CACHED_BYTES:
                    await outputs.put(self.db, key, body)
                    self._remember(key, result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self.inflight[key]

    def pending(self, req: RunRequest) -> asyncio.Future[RunResult] | None:
        return self.inflight.get(self.key(req))

    async def stop(self) -> None:
        for future in self.inflight.values():
            future.cancel()


def original_code(step: Step, side: Framework) -> str:
    """What the editor starts with: the starter on an exercise's side."""
    if step.exercise and step.exercise.side == side:
        return step.exercise.starter.code
    return step.snippet(side).code


def result_bytes(result: RunResult) -> int:
    """About what a result holds in memory: its JSON, plus the captured arrays it leaves out."""
    return len(result.model_dump_json()) + sum(
        len(c.data_b64 or "") for c in result.captured.values())


def _dump(result: RunResult) -> dict[str, Any]:
    return {"result": result.model_dump(mode="json"),
            "captured": {k: v.model_dump(mode="json") for k, v in result.captured.items()}}


def _load(body: dict[str, Any]) -> RunResult:
    result = RunResult.model_validate(body["result"])
    result.captured = {k: CapturedArray.model_validate(v) for k, v in body["captured"].items()}
    return result


def as_array(value: CapturedArray) -> np.ndarray | None:
    if value.data_b64 is None or value.dtype is None:
        return None
    return np.frombuffer(base64.b64decode(value.data_b64), dtype=value.dtype).reshape(
        value.shape or ())
