"""The pool: keeps a template per framework alive and ready spares waiting, and runs requests.

    web app ──run()──> FairQueue ──slot──> ready spare ──RunOrder / RunFinished──> supervisor ─> run
                                    ▲
    template (one per framework) ──spare sockets (fd passing over its control socket)──┘

Process roles and their lifecycle verbs: `start_template` /
`handle_dead_template` here (`template_process.py` holds one process),
`spawn` / `take` for spares (`spares.py`). The pool validates every
result again and cleans its SVGs before a page sees it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

from sandbox import wire
from sandbox.cgroups import CgroupBase
from sandbox.clean_svgs import clean_svgs
from sandbox.executor import ExecutorContext, PortsUnavailable
from sandbox.fairqueue import Client, FairQueue, QueueClosed, QueueFull
from sandbox.gpu_binds import find_gpu, run_slots
from sandbox.limits import Limits
from sandbox.memory import tree_pss_mb
from sandbox.messages import CgroupSpec, RunFinished, RunOrder
from sandbox.protocol import (
    FRAMEWORKS,
    Device,
    Framework,
    PortOrder,
    PortReport,
    RunRequest,
    RunResult,
    RunStatus,
)
from sandbox.reserve import Reserve, default_memory_mb, total_ram_mb
from sandbox.spares import Spares
from sandbox.stats import PoolStats
from sandbox.template_process import TEMPLATE_START_S, TemplateProcess

__all__ = ["RESULT_GRACE_S", "TEMPLATE_START_S", "Pool", "QueueFull"]
log = logging.getLogger("sidebyside.pool")

# On top of the run's wall limit (which graphs and timings share): the
# supervisor's own reporting. Past it the pool hangs up and the supervisor
# kills the run, so a slot is always free again within wall + grace.
RESULT_GRACE_S = 2.0
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
IDLE_REFILL_S = 0.1  # after a run, how long the pool waits before it refills
PSS_EVERY_S = 5.0  # reading smaps of every process is not free
MAX_SLOTS = 256  # the uids the sandbox's /etc/passwd knows


class Pool:
    def __init__(self, limits: Limits, size: int, insecure: bool = False,
                 queue_size: int = 64, queue_per_learner: int = 4,
                 queue_per_address: int = 32, spares_memory_mb: int | None = None) -> None:
        self.limits = limits
        # the one GPU bound into the sandbox, if any
        self.gpu = find_gpu(limits.gpu_device, mig_instance=limits.gpu_mig_instance)
        self.size = run_slots(size, self.gpu, limits.gpu_runs_per_device)
        self.insecure = insecure
        self.queue = FairQueue(self.size, queue_size, queue_per_learner, queue_per_address)
        self.reserve = Reserve(spares_memory_mb or default_memory_mb(total_ram_mb()),
                               most=limits.gpu_spares if self.gpu else None)
        self.templates = {f: TemplateProcess(f) for f in FRAMEWORKS}
        # A slot is a uid for a process that is running, ready or warming.
        most = self.size + sum(self.reserve.targets().values()) * 4
        self.spares = Spares(self.templates, self.reserve, limits, min(MAX_SLOTS, most),
                             in_flight=lambda: self.queue.busy > 0 or self.queue.waiting > 0)
        self._pss: tuple[float, float | None] = (0.0, None)  # (when, MiB)
        self._pss_reading: asyncio.Future[tuple[float, int]] | None = None
        self._running: set[asyncio.Task[Any]] = set()  # runs in flight
        self._closing = False
        self.template_restarts = 0
        self.runs_started = 0  # runs handed to a spare since start
        self.last_error: str | None = None
        self.cgroup: CgroupBase | None = None

    @property
    def context(self) -> ExecutorContext:
        return self.spares.context

    # ---- templates ------------------------------------------------------------

    async def start(self) -> None:
        if not self.insecure:
            self.cgroup = CgroupBase.create()
            if self.cgroup is None:
                log.warning("no memory cgroup can be made here (%s): each run's memory is "
                            "bounded per process only (RLIMIT_DATA x RLIMIT_NPROC)",
                            "not root" if os.getuid() else "no memory controller")
            else:
                cpu = self.cgroup.cpu_path
                self.spares.cgroup = CgroupSpec(base=str(self.cgroup.path),
                                                version=self.cgroup.version,
                                                cpu_base=str(cpu) if cpu else None)
        await asyncio.gather(*(self.start_template(f) for f in FRAMEWORKS))

    @property
    def memory_limit(self) -> str:
        """How a run's memory is bounded, in words for /api/health."""
        if self.insecure:
            return "none (insecure mode)"
        if self.cgroup is None:
            return "per-process rlimits only: no memory cgroup on this host"
        return f"memory cgroup v{self.cgroup.version} per run, plus per-process rlimits"

    @property
    def cpu_limit(self) -> str:
        """How a run's CPU is bounded, in words for /api/health."""
        per_process = f"RLIMIT_CPU {self.limits.cpu_s} s per process at the default timeout"
        if self.insecure:
            return "none (insecure mode)"
        if self.cgroup is None or self.cgroup.cpu_path is None:
            return f"{per_process} only: no CPU cgroup on this host"
        return (f"{self.limits.cpus:g} cores per run (cgroup v{self.cgroup.version} CPU quota), "
                f"plus {per_process}")

    async def start_template(self, framework: Framework) -> None:
        try:
            await self.templates[framework].start(
                insecure=self.insecure, gpu=self.gpu,
                cgroup_dirs=self.cgroup.folders if self.cgroup else [],
                kernels=self.limits.onednn_precompile, on_spare=self.spares.spawned,
                on_dead=functools.partial(self._template_died, framework))
        except BaseException:
            self.spares.retire(framework)
            raise
        self.spares.refill()

    def _template_died(self, framework: Framework) -> None:
        asyncio.get_running_loop().create_task(self.handle_dead_template(framework))

    async def handle_dead_template(self, framework: Framework) -> None:
        """Restart a template, backing off while it keeps failing; health says degraded."""
        template = self.templates[framework]
        if template.restarting:
            return
        template.restarting = True
        log.error("the %s sandbox template died; its in-flight runs end as killed; restarting",
                  framework)
        self._retire_template(framework)
        try:
            for attempt in itertools.count():
                if self._closing:
                    return
                self.template_restarts += 1
                await asyncio.sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
                try:
                    await self.start_template(framework)
                    self.last_error = None
                    return
                except Exception as exc:
                    self.last_error = f"template restart failed: {exc!r}"
                    log.exception("restarting the sandbox template failed (attempt %d)",
                                  attempt + 1)
        finally:
            template.restarting = False

    def _retire_template(self, framework: Framework) -> None:
        self.spares.retire(framework)
        self.templates[framework].stop()

    # ---- runs ---------------------------------------------------------------

    async def run(self, request: RunRequest, client: Client) -> RunResult:
        """Run one snippet. Raises QueueFull when the queue is full."""
        if self._closing:
            return _rejected("the server is shutting down")
        try:
            await self.queue.acquire(client)
        except QueueClosed:
            return _rejected("the server is shutting down")
        started = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._run_on_spare(request)
        finally:
            if task is not None:
                self._running.discard(task)
            self.queue.release(time.monotonic() - started)
            # Once runs stop for a moment, the reserve fills up again (a run
            # coming straight after this one would find the refill in its way).
            asyncio.get_running_loop().call_later(IDLE_REFILL_S, self.spares.refill)

    async def port(self, order: PortOrder, model: Path | None, out_dir: Path,
                   client: Client, inputs: Path | None = None) -> PortReport:
        """Port a Keras model as a run (`executor.Executor.port`); the work is `port_run.py`'s.

        A port takes one of the pool's slots, like a run. Raises QueueFull."""
        from sandbox.port_run import port_on_spare

        if self._closing:
            raise PortsUnavailable("the server is shutting down")
        try:
            await self.queue.acquire(client)
        except QueueClosed:
            raise PortsUnavailable("the server is shutting down") from None
        started = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await port_on_spare(self, order, model, out_dir, inputs)
        finally:
            if task is not None:
                self._running.discard(task)
            self.queue.release(time.monotonic() - started)
            asyncio.get_running_loop().call_later(IDLE_REFILL_S, self.spares.refill)

    def serves(self, device: Device) -> bool:
        return True  # the in-process pool runs every request itself, whatever it asks for

    async def _run_on_spare(self, request: RunRequest) -> RunResult:
        limits = self.limits.with_timeout(request.timeout_s)
        if self.last_error is not None and self.templates[request.framework].restarting:
            return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                    "the sandbox is restarting; try again in a few seconds",
                                    framework=request.framework)
        try:
            spare = await self.spares.take(request.framework, request.code)
            self.runs_started += 1
        except TimeoutError:
            return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                    "no sandbox became ready in time", framework=request.framework)
        order = RunOrder(request=request, wall_s=limits.wall_s, cpu_s=limits.cpu_s)
        result: RunResult | None = None
        try:
            spare.writer.write(wire.encode(order))
            await spare.writer.drain()
            frame = await asyncio.wait_for(
                wire.read_body_async(spare.reader, limits.result_bytes + 8 * limits.output_bytes
                                      + 2**20),
                limits.wall_s + RESULT_GRACE_S)
            if frame is not None:
                result = clean_svgs(wire.parse_frame(RunFinished, frame).result)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("run lost: %r", exc)  # ProtocolError is a ValueError
        finally:
            spare.close()  # the supervisor sees the hang-up and kills whatever is left
            self.spares.release_slot(spare.slot)
        if result is None:
            return RunResult.failed(RunStatus.killed, "SandboxLost",
                                    "the sandbox went away during the run",
                                    framework=request.framework, device=self.context.device,
                                    versions=self.context.versions)
        result.framework = request.framework
        result.device = result.device or self.context.device
        result.versions = result.versions or self.context.versions
        return result

    # ---- health and shutdown -------------------------------------------------

    def stats(self) -> PoolStats:
        alive = all(t.alive for t in self.templates.values())
        reserve = self.spares.stats()
        return PoolStats(
            slots=self.size, busy=self.queue.busy, queued=self.queue.waiting,
            runs_started=self.runs_started,
            spares_ready=sum(r.ready for r in reserve.values()),
            spares_warming=sum(r.warming for r in reserve.values()),
            reserve=reserve, reserve_memory_mb=self.reserve.memory_mb,
            tensorflow_kernels=self.templates["tensorflow"].kernels,
            pool_pss_mb=self.pss_mb(),
            template_alive=alive, template_restarts=self.template_restarts,
            degraded=(self.last_error or "the sandbox is restarting") if not alive
            else self.spares.stuck(),
            sandbox="insecure" if self.insecure else "bubblewrap+namespaces+seccomp",
            insecure=self.insecure,
            memory_cgroups=f"v{self.cgroup.version}" if self.cgroup else None,
            memory_limit=self.memory_limit, cpu_limit=self.cpu_limit)

    def pss_mb(self) -> float | None:
        """The sandbox's memory (templates, spares, runs), as last measured.

        Reading every process's smaps takes ~100 ms: it runs in a worker
        thread at most every few seconds, never on the event loop.
        """
        processes = [t.process for t in self.templates.values() if t.alive]
        alive = len(processes) == len(self.templates)
        if alive and self._pss_reading is None and time.monotonic() - self._pss[0] > PSS_EVERY_S:
            self._pss_reading = asyncio.get_running_loop().run_in_executor(
                None, tree_pss_mb, *(p.pid for p in processes if p is not None))
            self._pss_reading.add_done_callback(self._pss_read)
        return self._pss[1] if alive else None

    def _pss_read(self, reading: asyncio.Future[tuple[float, int]]) -> None:
        self._pss_reading = None
        if not reading.cancelled() and reading.exception() is None:
            self._pss = (time.monotonic(), round(reading.result()[0], 1))

    async def stop(self, drain_s: float = 10.0) -> None:
        """Refuse new runs, fail queued ones, give running ones `drain_s`, then end all."""
        self._closing = self.spares.closing = True
        self.queue.close()
        current = asyncio.current_task()
        running = [t for t in self._running if t is not current and not t.done()]
        if running:
            await asyncio.wait(running, timeout=drain_s)
        for framework in FRAMEWORKS:
            self._retire_template(framework)
        if self.cgroup is not None:
            self.cgroup.remove()
        warmers = list(self.spares.warmers)
        for task in [*running, *warmers]:
            task.cancel()
        await asyncio.gather(*warmers, return_exceptions=True)


def _rejected(message: str) -> RunResult:
    return RunResult.failed(RunStatus.rejected, "Rejected", message)
