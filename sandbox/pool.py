"""The pool: keeps a template per framework alive and ready spares waiting, and runs requests.

    web app ──run()──> FairQueue ──slot──> ready spare ──request/result frames──> supervisor ─> run
                                    ▲
    template (one per framework) ──spare sockets (fd passing over its control socket)──┘

Process roles and their lifecycle verbs: `start_template` / `handle_dead_template`,
`spawn_spare` / `take_spare`. A spare serves exactly one run; the pool asks
for its replacement as soon as it is taken, so the next run finds one warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any

from sandbox import launcher, wire
from sandbox.cgroups import CgroupBase
from sandbox.executor import ExecutorContext
from sandbox.fairqueue import Client, FairQueue, QueueClosed, QueueFull
from sandbox.gpu_binds import find_gpu, run_slots
from sandbox.limits import Limits
from sandbox.memory import tree_pss_mb
from sandbox.protocol import (
    FRAMEWORKS,
    CgroupSpec,
    Device,
    Framework,
    ProtocolError,
    RunFinished,
    RunOrder,
    RunRequest,
    RunResult,
    RunStatus,
    SpareReady,
    SpareSpawned,
    SpawnSpare,
    TemplateHello,
    parse_frame,
)
from sandbox.reserve import Reserve, default_memory_mb, needs_fresh_runtime, total_ram_mb
from sandbox.results import clean_result

__all__ = ["Pool", "QueueFull"]
log = logging.getLogger("sidebyside.pool")

TEMPLATE_START_S = 180.0  # importing both frameworks on a cold disk can be slow
# On top of the run's wall limit (which graphs and timings share): the
# supervisor's own reporting. Past it the pool hangs up and the supervisor
# kills the run, so a slot is always free again within wall + grace.
RESULT_GRACE_S = 2.0
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
RESERVE_FLOOR_DIVISOR = 4  # while runs are in flight, refill only below target / 4
IDLE_REFILL_S = 0.1  # after a run, how long the pool waits before it refills
PSS_EVERY_S = 5.0  # reading smaps of every process is not free
MAX_SLOTS = 256  # the uids the sandbox's /etc/passwd knows


@dataclasses.dataclass
class Template:
    """One framework's template process, its control socket and its restarts."""

    framework: Framework
    process: subprocess.Popen[bytes] | None = None
    ctrl: socket.socket | None = None
    generation: int = 0  # spares of an earlier generation died with their template
    restarting: bool = False
    kernels: str = ""  # what the template said of its precompiled kernels (onednn.py)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclasses.dataclass
class Spare:
    slot: int
    framework: Framework
    generation: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class Pool:
    def __init__(self, limits: Limits, size: int, insecure: bool = False,
                 queue_size: int = 64, queue_per_learner: int = 4,
                 queue_per_address: int = 32, spares_memory_mb: int | None = None) -> None:
        self.limits = limits
        self.gpu = find_gpu(limits.gpu_device)  # the one GPU bound into the sandbox, if any
        self.size = run_slots(size, self.gpu, limits.gpu_runs_per_device)
        self.insecure = insecure
        self.queue = FairQueue(self.size, queue_size, queue_per_learner, queue_per_address)
        self.reserve = Reserve(spares_memory_mb or default_memory_mb(total_ram_mb()),
                               most=limits.gpu_spares if self.gpu else None)
        self.context = ExecutorContext()
        self._ready: dict[Framework, asyncio.Queue[Spare]] = {
            f: asyncio.Queue() for f in FRAMEWORKS}
        self._warming: dict[Framework, int] = dict.fromkeys(FRAMEWORKS, 0)
        # A slot is a uid for a process that is running, ready or warming.
        most = self.size + sum(self.reserve.targets().values()) * 4
        self._free_slots = list(range(min(MAX_SLOTS, most)))
        self._pss: tuple[float, float | None] = (0.0, None)  # (when, MiB)
        self._pss_reading: asyncio.Future[tuple[float, int]] | None = None
        self._ids = itertools.count()
        self.templates = {f: Template(f) for f in FRAMEWORKS}
        self._running: set[asyncio.Task[Any]] = set()  # runs in flight
        self._warmers: set[asyncio.Task[Any]] = set()
        # Fresh spares are made for one run that waits for it, by spare id.
        self._fresh: dict[int, tuple[Framework, asyncio.Future[Spare | None]]] = {}
        self._closing = False
        self._started = asyncio.Event()
        self.template_restarts = 0
        self.runs_started = 0  # runs handed to a spare since start
        self.last_error: str | None = None
        self.cgroup: CgroupBase | None = None

    # ---- template lifecycle -------------------------------------------------

    async def start(self) -> None:
        if not self.insecure:
            self.cgroup = CgroupBase.create()
            if self.cgroup is None:
                log.warning("no memory cgroup can be made here (%s): each run's memory is "
                            "bounded per process only (RLIMIT_DATA x RLIMIT_NPROC)",
                            "not root" if os.getuid() else "no memory controller")
        await asyncio.gather(*(self.start_template(f) for f in FRAMEWORKS))

    @property
    def memory_limit(self) -> str:
        """How a run's memory is bounded, in words for /api/health."""
        if self.insecure:
            return "none (insecure mode)"
        if self.cgroup is None:
            return "per-process rlimits only: no memory cgroup on this host"
        return f"memory cgroup v{self.cgroup.version} per run, plus per-process rlimits"

    async def start_template(self, framework: Framework) -> None:
        loop = asyncio.get_running_loop()
        template = self.templates[framework]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = launcher.template_argv(theirs.fileno(), framework, self.insecure)
        fds = [theirs.fileno()]
        identity: tuple[int, ...] = ()
        if not self.insecure:
            identity = launcher.identity_fds()
            argv = launcher.bwrap_command(argv, *identity,
                                          cgroup_dir=str(self.cgroup.path) if self.cgroup else None,
                                          gpu=self.gpu)
            fds += identity
        env = None if not self.insecure else {**launcher.RUN_ENV, "PYTHONPATH": str(
            launcher.SANDBOX_DIR.parent), "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
        template.process = subprocess.Popen(argv, pass_fds=fds, env=env, stdin=subprocess.DEVNULL,
                                         stdout=sys.stderr, stderr=sys.stderr)
        theirs.close()
        for fd in identity:
            os.close(fd)
        ours.setblocking(False)
        template.ctrl = ours
        template.generation += 1
        try:
            hello = await asyncio.wait_for(loop.sock_recv(ours, 65536), TEMPLATE_START_S)
            if not hello:
                raise RuntimeError("the sandbox template exited while starting (see the log)")
            template.kernels = parse_frame(TemplateHello, hello).kernels
        except BaseException:
            self._retire_template(framework)
            raise
        loop.add_reader(ours.fileno(), self._on_ctrl_readable, ours, framework,
                        template.generation)
        self._started.set()
        self.refill()

    def _on_ctrl_readable(self, ctrl: socket.socket, framework: Framework,
                          generation: int) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 65536, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            asyncio.get_running_loop().remove_reader(ctrl.fileno())
            if generation == self.templates[framework].generation:
                asyncio.get_running_loop().create_task(self.handle_dead_template(framework))
            return
        sock = socket.socket(fileno=fds[0]) if fds else None
        try:
            spawned = parse_frame(SpareSpawned, data)
            if spawned.framework != framework:
                raise ProtocolError(f"a {spawned.framework} spare from the {framework} template")
        except ProtocolError:
            log.error("the template sent a malformed message; restarting it")
            if sock is not None:
                sock.close()
            asyncio.get_running_loop().create_task(self.handle_dead_template(framework))
            return
        if sock is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._await_ready(sock, spawned.slot, spawned.framework, generation, spawned.id))
        self._warmers.add(task)
        task.add_done_callback(self._warmers.discard)

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
        template = self.templates[framework]
        template.generation += 1  # spares of the old template are now stale
        self._warming[framework] = 0
        for spare_id, (kind, waiting) in list(self._fresh.items()):
            if kind == framework:  # its template won't answer: the runs waiting hear now
                del self._fresh[spare_id]
                if not waiting.done():
                    waiting.set_result(None)
        while not self._ready[framework].empty():
            spare = self._ready[framework].get_nowait()
            self._release_slot(spare.slot)
            spare.close()
        if template.ctrl is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(template.ctrl.fileno())
            template.ctrl.close()
            template.ctrl = None
        if template.process is not None and template.process.poll() is None:
            template.process.kill()
        if template.process is not None:
            template.process.wait()

    # ---- spares -------------------------------------------------------------

    def refill(self) -> None:
        """Spawn spares up to each framework's target; retire ready ones beyond it.

        While runs are in flight the reserve is drawn down to a quarter of its
        target before anything is spawned: a burst is served from spares made
        in the quiet before it, and its runs don't share the CPU (nor the
        template's loop) with forks and warm-ups. Each run calls this again
        `IDLE_REFILL_S` after it ends: once no run is in flight, the reserve
        fills up behind the burst.
        """
        running = self.queue.busy > 0 or self.queue.waiting > 0
        for framework, target in self.reserve.targets().items():
            ready = self._ready[framework]
            floor = max(1, target // RESERVE_FLOOR_DIVISOR) if running else target
            while ready.qsize() + self._warming[framework] < floor:
                if self.spawn_spare(framework) is None:
                    break
            while ready.qsize() > target:  # demand moved on: give its memory to the other kind
                spare = ready.get_nowait()
                spare.close()  # the supervisor sees the hang-up and ends the spare
                self._release_slot(spare.slot)

    def spawn_spare(self, framework: Framework, fresh: bool = False) -> int | None:
        """Ask the template for a spare; its id, or None when none can be made now."""
        template = self.templates[framework]
        if template.ctrl is None or self._closing or not self._free_slots:
            return None
        slot = self._free_slots.pop(0)
        spare_id = next(self._ids)
        message = SpawnSpare(
            id=spare_id, slot=slot, framework=framework,
            warm_ups=self.reserve.warm_ups(framework),
            name=f"{framework}-{template.generation}-{spare_id}",
            limits=self.limits, fresh=fresh,
            cgroup=CgroupSpec(base=str(self.cgroup.path), version=self.cgroup.version)
            if self.cgroup else None)
        try:
            template.ctrl.send(message.model_dump_json().encode())
        except OSError:
            self._release_slot(slot)
            return None
        if fresh:
            self._fresh[spare_id] = (framework, asyncio.get_running_loop().create_future())
        else:
            self._warming[framework] += 1
        return spare_id

    async def _await_ready(self, sock: socket.socket, slot: int, framework: Framework,
                           generation: int, spare_id: int) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2**20)
        spare = Spare(slot, framework, generation, reader, writer)
        ready: SpareReady | None = None
        try:
            frame = await asyncio.wait_for(wire.read_body_async(reader, 2**20), 120)
            ready = None if frame is None else parse_frame(SpareReady, frame)
        except (TimeoutError, ValueError):
            pass
        except asyncio.CancelledError:
            spare.close()
            raise
        waiting = self._fresh.pop(spare_id, (framework, None))[1]
        if generation != self.templates[framework].generation:
            spare.close()
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            return
        if waiting is not None:  # made for one run: it goes to that run, ready or not
            if ready is None or waiting.done():
                spare.close()
                self._release_slot(slot)
            if not waiting.done():
                waiting.set_result(spare if ready is not None else None)
            return
        self._warming[framework] -= 1
        if ready is None or ready.framework != framework:
            log.warning("a spare failed while starting; replacing it")
            spare.close()
            self._release_slot(slot)
            self.refill()
            return
        self.context = ExecutorContext(device=ready.device, versions=ready.versions)
        self._ready[framework].put_nowait(spare)

    def _release_slot(self, slot: int) -> None:
        self._free_slots.append(slot)

    async def take_spare(self, framework: Framework, code: str = "") -> Spare:
        self.reserve.record(framework, code)
        if needs_fresh_runtime(framework, code):
            return await self._take_fresh_spare(framework)
        self.refill()  # a spare of this kind is on its way even if none is ready
        while True:
            spare = await asyncio.wait_for(self._ready[framework].get(), TEMPLATE_START_S)
            # A dead template takes its spares with it, even before the pool
            # has read the news from the control socket.
            template = self.templates[framework]
            if template.alive and spare.generation == template.generation \
                    and not spare.reader.at_eof():
                break
            spare.close()
            self._release_slot(spare.slot)
            self.refill()
        self.refill()  # its replacement warms up while this one runs
        return spare

    async def _take_fresh_spare(self, framework: Framework) -> Spare:
        """A spare made for this run alone, that started no runtime (raises TimeoutError)."""
        spare_id = self.spawn_spare(framework, fresh=True)
        if spare_id is None:
            raise TimeoutError("no slot or template for a fresh spare")
        waiting = self._fresh[spare_id][1]
        try:
            spare = await asyncio.wait_for(asyncio.shield(waiting), TEMPLATE_START_S)
        except BaseException:
            # Given up on (timeout, cancelled): whatever arrives later is closed.
            waiting.cancel()
            raise
        if spare is None:
            raise TimeoutError("the fresh spare failed while starting")
        return spare

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
            asyncio.get_running_loop().call_later(IDLE_REFILL_S, self.refill)

    def serves(self, device: Device) -> bool:
        return True  # the in-process pool runs every request itself, whatever it asks for

    async def _run_on_spare(self, request: RunRequest) -> RunResult:
        limits = self.limits.with_timeout(request.timeout_s)
        if self.last_error is not None and self.templates[request.framework].restarting:
            return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                    "the sandbox is restarting; try again in a few seconds",
                                    framework=request.framework)
        try:
            spare = await self.take_spare(request.framework, request.code)
            self.runs_started += 1
        except TimeoutError:
            return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                    "no sandbox became ready in time", framework=request.framework)
        order = RunOrder(request=request, wall_s=limits.wall_s, cpu_s=limits.cpu_s)
        result: RunResult | None = None
        try:
            spare.writer.write(wire.encode(order.model_dump()))
            await spare.writer.drain()
            frame = await asyncio.wait_for(
                wire.read_body_async(spare.reader, limits.result_bytes + 8 * limits.output_bytes
                                      + 2**20),
                limits.wall_s + RESULT_GRACE_S)
            if frame is not None:
                result = clean_result(parse_frame(RunFinished, frame).result)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("run lost: %r", exc)  # ProtocolError is a ValueError
        finally:
            spare.close()  # the supervisor sees the hang-up and kills whatever is left
            self._release_slot(spare.slot)
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

    def stats(self) -> dict[str, Any]:
        alive = all(t.alive for t in self.templates.values())
        targets = self.reserve.targets()
        reserve = {f: {"ready": self._ready[f].qsize(), "warming": self._warming[f],
                       "target": targets[f]} for f in FRAMEWORKS}
        return {"slots": self.size, "busy": self.queue.busy, "queued": self.queue.waiting,
                "runs_started": self.runs_started,
                "spares_ready": sum(r["ready"] for r in reserve.values()),
                "spares_warming": sum(r["warming"] for r in reserve.values()),
                "reserve": reserve, "reserve_memory_mb": self.reserve.memory_mb,
                "tensorflow_kernels": self.templates["tensorflow"].kernels or None,
                "pool_pss_mb": self.pss_mb(),
                "template_alive": alive, "template_restarts": self.template_restarts,
                "degraded": None if alive else (self.last_error or "the sandbox is restarting"),
                "sandbox": "insecure" if self.insecure else "bubblewrap+namespaces+seccomp",
                "memory_cgroups": f"v{self.cgroup.version}" if self.cgroup else None,
                "memory_limit": self.memory_limit}

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
        self._closing = True
        self.queue.close()
        current = asyncio.current_task()
        running = [t for t in self._running if t is not current and not t.done()]
        if running:
            await asyncio.wait(running, timeout=drain_s)
        for framework in FRAMEWORKS:
            self._retire_template(framework)
        if self.cgroup is not None:
            self.cgroup.remove()
        for task in [*running, *self._warmers]:
            task.cancel()
        await asyncio.gather(*self._warmers, return_exceptions=True)


def _rejected(message: str) -> RunResult:
    return RunResult.failed(RunStatus.rejected, "Rejected", message)
