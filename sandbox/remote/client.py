"""The web side of remote workers: an `Executor` that runs requests through Celery and Redis.

A run takes a slot in its device's fair queue (its capacity follows the
registered workers' slots), is sent to the device's queue, and is answered
by the first of:
- the worker's result, validated and cleaned again here (a worker's claim);
- its worker's heartbeat gone (the worker died): `killed`, "WorkerLost";
- the deadline, the run's wall time plus the pool's grace and the
  transport's: `killed`, "WorkerLost". The message expires then too, so no
  worker runs it once the learner has been told.
With no worker for the device, a run is rejected at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio

from sandbox.clean_svgs import clean_svgs
from sandbox.executor import ExecutorContext, PortsUnavailable
from sandbox.fairqueue import Client, FairQueue, QueueClosed
from sandbox.limits import Limits
from sandbox.messages import RunFinished
from sandbox.pool import RESULT_GRACE_S
from sandbox.protocol import (
    DEVICES,
    Device,
    PortOrder,
    PortReport,
    RunRequest,
    RunResult,
    RunStatus,
)
from sandbox.remote.celeryapp import RUN_TASK, make_celery, queue_for
from sandbox.remote.listener import ResultListener, parse_state
from sandbox.remote.messages import RemoteRun
from sandbox.remote.registry import DEFAULT_MAX_SLOTS, WorkerRegistry
from sandbox.remote.signing import Signer
from sandbox.stats import DeviceStats, RemoteStats
from sandbox.wire import ProtocolError, parse_frame

log = logging.getLogger("sidebyside.remote")
TRANSPORT_GRACE_S = 2.0  # queue, result backend and pub/sub, on top of the pool's own grace
WATCH_EVERY_S = 0.5  # how often a waiting run looks at its worker's heartbeat
SUBSCRIBE_WAIT_S = 5.0
RESULT_MAX_AGE_S = 60.0  # a result is read as it arrives: an old one is a replay


class NoWorker(Exception):
    def __init__(self, device: Device) -> None:
        super().__init__(f"no worker available for {device}")


class DeviceQueues:
    """The fair queues of all devices, as one for a page's "queued, position N"."""

    def __init__(self, queues: dict[Device, FairQueue]) -> None:
        self.queues = queues

    def position(self, client: Client) -> int | None:
        return next((p for q in self.queues.values() if (p := q.position(client))), None)


class RemoteExecutor:
    def __init__(self, broker_url: str, limits: Limits, signer: Signer, queue_size: int = 64,
                 queue_per_learner: int = 4, queue_per_address: int = 32,
                 worker_max_slots: int = DEFAULT_MAX_SLOTS) -> None:
        self.broker_url, self.limits, self.signer = broker_url, limits, signer
        self.celery = make_celery(broker_url)
        self.queues = {d: FairQueue(0, queue_size, queue_per_learner, queue_per_address)
                       for d in DEVICES}
        self.queue = DeviceQueues(self.queues)
        self.context = ExecutorContext()
        self.runs_started = 0
        self._redis = redis.asyncio.Redis.from_url(broker_url)
        self.registry = WorkerRegistry(self._redis, self._follow_workers, signer,
                                       worker_max_slots)
        prefix = self.celery.backend.get_key_for_task("-").decode()[:-1]  # less the id
        self.listener = ResultListener(self._redis, prefix)
        # Publishing is a blocking call in kombu: done off the loop, on a few threads.
        self._sender = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="sbs-send")
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def size(self) -> int:
        return max(1, sum(q.slots for q in self.queues.values()))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.listener.listen()),
                       loop.create_task(self.registry.watch())]
        try:  # without Redis the site still serves its pages; runs say why they can't run
            await asyncio.wait_for(self.listener.ready.wait(), SUBSCRIBE_WAIT_S)
        except TimeoutError:
            log.error("Redis at the broker URL is unreachable; runs are refused until it is back")

    def _follow_workers(self) -> None:
        for device, queue in self.queues.items():
            queue.resize(self.registry.slots(device))
            if queue.slots == 0:
                queue.fail_waiting(NoWorker(device))
        first = min(self.registry.workers.values(), key=lambda b: b.name, default=None)
        if first is not None:
            self.context = ExecutorContext(versions=dict(first.versions))

    def serves(self, device: Device) -> bool:
        return self.queues[device].slots > 0

    async def port(self, order: PortOrder, model: Path | None, out_dir: Path,
                   client: Client, inputs: Path | None = None) -> PortReport:
        raise PortsUnavailable(
            "porting a model needs the local sandbox: this server sends its runs to remote "
            "workers (SIDEBYSIDE_BROKER_URL), which can't be handed an uploaded model")

    async def run(self, request: RunRequest, client: Client) -> RunResult:
        queue = self.queues[request.device]
        if queue.closed:
            return _failed(RunStatus.rejected, "Rejected", "the server is shutting down", request)
        try:
            if queue.slots <= 0:
                raise NoWorker(request.device)
            await queue.acquire(client)  # QueueFull goes up: the routes answer 429
        except NoWorker as exc:
            return _failed(RunStatus.rejected, "NoWorker", str(exc), request)
        except QueueClosed:
            return _failed(RunStatus.rejected, "Rejected", "the server is shutting down", request)
        started = time.monotonic()
        try:
            return await self._run_remote(request)
        finally:
            queue.release(time.monotonic() - started)

    async def _run_remote(self, request: RunRequest) -> RunResult:
        wall_s = self.limits.with_timeout(request.timeout_s).wall_s
        request = request.model_copy(update={"timeout_s": wall_s})  # the worker keeps the web's
        wait_s = wall_s + RESULT_GRACE_S + TRANSPORT_GRACE_S
        order = RemoteRun(request=request, deadline=time.time() + wait_s)
        task_id = uuid.uuid4().hex
        with self.listener.expect(task_id) as inbox:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._sender, self._send, task_id, order, wait_s)
            except Exception as exc:  # kombu and redis-py raise several kinds
                log.warning("run not sent: %r", exc)
                return _failed(RunStatus.rejected, "QueueUnreachable",
                               "the run queue (Redis) is unreachable; try again", request)
            self.runs_started += 1
            return await self._await_result(task_id, inbox, request, wait_s)

    def _send(self, task_id: str, order: RemoteRun, wait_s: float) -> None:
        # argsrepr: Celery would otherwise walk the whole snippet to describe it in the
        # message's headers (and its logs); a fixed label costs nothing and shows no code.
        self.celery.send_task(RUN_TASK, args=[order.model_dump(mode="json")], task_id=task_id,
                              queue=queue_for(order.request.device), expires=wait_s,
                              argsrepr=f"({order.request.framework} run)", kwargsrepr="{}")

    async def _await_result(self, task_id: str, inbox: asyncio.Queue[bytes],
                            request: RunRequest, wait_s: float) -> RunResult:
        deadline = time.monotonic() + wait_s
        worker, taken_at = "", 0.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(inbox.get(), min(left, WATCH_EVERY_S))
            except TimeoutError:
                if worker and self.registry.gone_since(worker, taken_at):
                    return _lost(request, f"its worker {worker} went away during the run", worker)
                continue
            state = parse_state(data)
            if state is None:
                return _failed(RunStatus.killed, "ProtocolError",
                               "a worker sent a malformed task state", request)
            if state.status == "STARTED":
                took = state.result.get("hostname") if isinstance(state.result, dict) else None
                worker, taken_at = (str(took)[:256], time.monotonic()) if took else (worker, 0.0)
                continue
            return self._answer(task_id, state.status, state.result, request, worker)
        stored = await self.listener.stored(task_id)  # published while re-subscribing?
        state = parse_state(stored) if stored else None
        if state is not None and state.status not in ("PENDING", "STARTED"):
            return self._answer(task_id, state.status, state.result, request, worker)
        return _lost(request, f"no result within {wait_s:.0f} s", worker)

    def _answer(self, task_id: str, status: str, payload: Any, request: RunRequest,
                worker: str) -> RunResult:
        if status == "SUCCESS":
            try:  # sealed by a worker that holds the secret, for this task, recently
                body = self.signer.open("result", payload, bound_to=task_id,
                                        max_age_s=RESULT_MAX_AGE_S)
                result = clean_svgs(parse_frame(RunFinished, body.encode()).result)
            except ProtocolError as exc:
                return _failed(RunStatus.killed, "ProtocolError",
                               f"a worker sent a malformed result: {exc}", request)
            result.framework = request.framework
            return result
        if status == "REVOKED":  # expired in the queue before a worker took it
            return _failed(RunStatus.rejected, "Expired", "no worker took the run in time", request)
        return _failed(RunStatus.killed, "WorkerError",
                       f"the worker failed to run it ({status})", request, worker=worker)

    def stats(self) -> RemoteStats:
        workers = sorted(self.registry.workers.values(), key=lambda b: b.name)
        degraded = self.registry.error or (None if workers else "no worker registered")
        return RemoteStats(
            slots=sum(q.slots for q in self.queues.values()),
            busy=sum(q.busy for q in self.queues.values()),
            queued=sum(q.waiting for q in self.queues.values()),
            runs_started=self.runs_started,
            devices={d: DeviceStats(slots=q.slots, busy=q.busy, queued=q.waiting)
                     for d, q in self.queues.items()},
            template_alive=degraded is None, degraded=degraded,
            sandbox="remote workers (Celery over Redis)", memory_cgroups=None,
            insecure=any(w.sandbox == "insecure" for w in workers),
            memory_limit="set by each worker's sandbox",
            cpu_limit="set by each worker's sandbox", workers=workers)

    async def stop(self) -> None:
        for queue in self.queues.values():
            queue.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
        self._sender.shutdown(wait=False, cancel_futures=True)


def _failed(status: RunStatus, type_: str, message: str, request: RunRequest,
            **kw: object) -> RunResult:
    return RunResult.failed(status, type_, message, framework=request.framework, **kw)


def _lost(request: RunRequest, why: str, worker: str) -> RunResult:
    return _failed(RunStatus.killed, "WorkerLost", f"the run was lost: {why}", request,
                   worker=worker)
