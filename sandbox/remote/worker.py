"""A worker host: the local sandbox pool, fed by a Celery worker from its device's queue.

    sidebyside worker (this process)
     ├── main thread: the Celery worker (threads pool, concurrency = the pool's slots),
     │    └── task threads: one per run in flight, each handing its run to the loop
     │        below (`asyncio.run_coroutine_threadsafe`) and waiting for the answer
     ├── "pool-loop" thread: the asyncio loop that owns the Pool and the heartbeat
     └── bwrap ─ template ─ spares / runs   (sandbox/pool.py; dies with this process)

The Pool is asyncio through and through, so it lives on one loop; Celery's
threads pool gives each run a thread that only waits, which costs far less
than a process per slot (prefork would need a Pool, and a template, each).
Measured on a 2-core machine, one run at a time: a run's p50 through the
threads pool (16.0 and 15.4 ms over two tries) is the solo pool's (14.1 and
17.4 ms, one run at once) within the machine's noise, and it runs as many
at once as the pool has slots.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import redis.asyncio
from celery import Task
from celery.signals import worker_shutting_down
from celery.utils.nodenames import default_nodename

from sandbox.fairqueue import Client
from sandbox.messages import RunFinished
from sandbox.pool import RESULT_GRACE_S, TEMPLATE_START_S, Pool
from sandbox.protocol import RunRequest, RunResult, RunStatus
from sandbox.remote.celeryapp import (
    BEAT_EVERY_S,
    BEAT_PREFIX,
    BEAT_TTL_S,
    RUN_TASK,
    make_celery,
    queue_for,
)
from sandbox.remote.device import HostDevice
from sandbox.remote.messages import RemoteRun, WorkerBeat
from sandbox.remote.signing import Signer
from sandbox.wire import ProtocolError, parse_frame

log = logging.getLogger("sidebyside.worker")
T = TypeVar("T")
REPORT_MARGIN_S = 1.0  # for the result's way back to the web (the web allows 2 s: client.py)
MIN_RUN_S = 0.5  # less time than this left before the deadline: not worth starting
# The web side's fair queue already chose whose turn it is; here runs go first come, first served.
REMOTE_CLIENT = Client(learner="remote", address="queue", capped=False)


class WorkerHost:
    def __init__(self, pool: Pool, name: str, device: HostDevice, broker_url: str,
                 signer: Signer) -> None:
        self.pool, self.device, self.broker_url = pool, device, broker_url
        self.signer = signer  # seals beats and results: the web refuses anything unsealed
        self.name = default_nodename(name)  # as Celery names the node: "celery@" + a bare name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pool-loop",
                                        daemon=True)
        self._beating: concurrent.futures.Future[None] | None = None
        self._redis: redis.asyncio.Redis | None = None  # made on the loop, used only there
        self._announcing: set[asyncio.Task[Any]] = set()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def start(self) -> None:
        """Start the pool (a template per framework), then advertise."""
        self._thread.start()
        self._call(self._start_pool()).result()
        self._beating = self._call(self.beat_forever())

    async def _start_pool(self) -> None:
        self._redis = redis.asyncio.Redis.from_url(self.broker_url)
        await self.pool.start()
        # The first ready spare brings the versions a beat advertises (and the web
        # keys its output cache on): until then the worker is not one to send runs to.
        deadline = time.monotonic() + TEMPLATE_START_S
        while not self.pool.context.versions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def leave(self) -> None:
        """Stop beating (the key goes at once): web servers send no more runs here."""
        if self._beating is not None:
            self._beating.cancel()

    def stop(self) -> None:
        self.leave()
        self._call(self.pool.stop()).result(timeout=30)
        if self._redis is not None:
            self._call(self._redis.aclose()).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    # ---- the heartbeat --------------------------------------------------------

    def beat(self) -> WorkerBeat:
        stats = self.pool.stats()
        return WorkerBeat(
            name=self.name, device=self.device.device, device_name=self.device.name,
            memory_mb=self.device.memory_mb, cuda=self.device.cuda,
            versions=self.pool.context.versions, slots=stats.slots,
            busy=stats.busy, free=max(0, stats.slots - stats.busy - stats.queued),
            degraded=stats.degraded, sandbox=stats.sandbox)

    async def beat_forever(self) -> None:
        assert self._redis is not None
        key = f"{BEAT_PREFIX}{self.device.device}:{self.name}"
        try:
            while True:
                try:
                    sealed = self.signer.seal("beat", self.beat().model_dump_json())
                    await self._redis.set(key, sealed.model_dump_json(),
                                          px=int(BEAT_TTL_S * 1000))
                except (redis.RedisError, OSError) as exc:  # Redis restarting: beat again later
                    log.warning("heartbeat not sent: %r", exc)
                await asyncio.sleep(BEAT_EVERY_S)
        finally:  # a clean stop leaves at once; a killed worker's key expires
            with contextlib.suppress(redis.RedisError, OSError):
                await self._redis.delete(key)

    async def _announce(self, channel: str) -> None:
        """Tell the web which worker took a run, so it can watch this worker's heartbeat.

        Published on the task's result channel in the shape of Celery's own
        STARTED state, but from this loop while the run goes on: Celery's
        `task_track_started` would store it first, a round trip before every run.
        """
        assert self._redis is not None
        state = json.dumps({"status": "STARTED", "result": {"hostname": self.name}})
        try:
            await self._redis.publish(channel, state)
        except (redis.RedisError, OSError) as exc:  # the run goes on; the web has its deadline
            log.warning("could not say which worker took a run: %r", exc)

    async def _run_announced(self, request: RunRequest, channel: str) -> RunResult:
        announcing = asyncio.create_task(self._announce(channel))
        self._announcing.add(announcing)
        announcing.add_done_callback(self._announcing.discard)
        return await self.pool.run(request, REMOTE_CLIENT)

    # ---- runs (called in Celery's task threads) --------------------------------

    def run(self, payload: object, channel: str, task_id: str) -> dict[str, object]:
        """One run, from a Celery task thread; `channel` is where its states are published.
        The result goes back sealed, bound to its task (`signing.py`)."""
        result = self._run(payload, channel)
        result.worker = self.name
        body = json.dumps(RunFinished.of(result).to_task_result())
        return self.signer.seal("result", body, bound_to=task_id).model_dump()

    def _run(self, payload: object, channel: str) -> RunResult:
        try:
            order = parse_frame(RemoteRun, payload)  # type: ignore[arg-type]
        except ProtocolError as exc:
            return RunResult.failed(RunStatus.rejected, "ProtocolError", str(exc))
        request = order.request
        # The web stops waiting at the deadline: the run must end, and its result
        # reach the web, before it. A run taken at once keeps its whole wall time.
        left = order.deadline - time.time() - RESULT_GRACE_S - REPORT_MARGIN_S
        if left < MIN_RUN_S:
            return RunResult.failed(RunStatus.rejected, "Expired",
                                    "the run waited too long for a worker",
                                    framework=request.framework)
        wall = self.pool.limits.with_timeout(request.timeout_s).wall_s
        if wall > left:
            request = request.model_copy(update={"timeout_s": left})
        future = self._call(self._run_announced(request, channel))
        try:
            return future.result(timeout=left + RESULT_GRACE_S + 1)
        except concurrent.futures.TimeoutError:  # the pool's own deadline failed: never hang
            future.cancel()
            return RunResult.failed(RunStatus.killed, "SandboxLost",
                                    "the worker's sandbox did not answer in time",
                                    framework=request.framework)


def serve(host: WorkerHost, loglevel: str = "INFO") -> None:
    """Run a Celery worker for `host` until it is told to stop (SIGTERM, SIGINT)."""
    celery = make_celery(host.broker_url)

    @celery.task(name=RUN_TASK, bind=True)  # type: ignore[untyped-decorator]
    def run(task: Task, payload: object) -> dict[str, object]:
        task_id = str(task.request.id)
        return host.run(payload, celery.backend.get_key_for_task(task_id).decode(), task_id)

    # Celery logs every task's return value at INFO: a result with its arrays is megabytes.
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)

    def leave(**_: object) -> None:  # the runs in flight still finish
        host.leave()

    worker_shutting_down.connect(leave, weak=False)
    host.start()
    try:
        worker = celery.Worker(
            hostname=host.name, pool_cls="threads", concurrency=host.pool.size,
            queues=[queue_for(host.device.device)], loglevel=loglevel,
            without_mingle=True, without_gossip=True, without_heartbeat=True,
            prefetch_multiplier=1)
        worker.start()
    finally:
        host.stop()
