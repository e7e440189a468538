"""The pool: keeps a template alive and ready spares waiting, and runs requests on them.

    web app ──run()──> FairQueue ──slot──> ready spare ──request/result frames──> supervisor ─> run
                                    ▲
    template ──spare sockets (fd passing over the control socket)──┘

Process roles and their lifecycle verbs: `start_template` / `handle_dead_template`,
`spawn_spare` / `take_spare`. A spare serves exactly one run; the pool asks
for its replacement as soon as it is taken, so the next run finds one warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any

from sandbox import launcher, wire
from sandbox.cgroups import CgroupBase
from sandbox.fairqueue import FairQueue, QueueClosed, QueueFull
from sandbox.limits import Limits
from sandbox.protocol import RunRequest, RunResult, RunStatus

__all__ = ["Pool", "QueueFull"]
log = logging.getLogger("sidebyside.pool")

TEMPLATE_START_S = 180.0  # importing both frameworks on a cold disk can be slow
RESULT_GRACE_S = 15.0  # on top of the run's wall limit, for graphs and transfer
MAX_SLOTS = 256  # the uids the sandbox's /etc/passwd knows


@dataclasses.dataclass
class Spare:
    slot: int
    generation: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    context: dict[str, Any] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        self.writer.close()


class Pool:
    def __init__(self, limits: Limits, size: int, insecure: bool = False,
                 queue_size: int = 64) -> None:
        self.limits = limits
        self.size = max(1, size)
        self.insecure = insecure
        self.queue = FairQueue(self.size, queue_size)
        self.context: dict[str, Any] = {"device": "", "versions": {}}
        self._ready: asyncio.Queue[Spare] = asyncio.Queue()
        self._warming = 0
        self._free_slots = list(range(min(MAX_SLOTS, self.size * 4)))
        self._generation = 0
        self._ids = itertools.count()
        self._process: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._running: set[asyncio.Task[Any]] = set()  # runs in flight
        self._warmers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._started = asyncio.Event()
        self.template_restarts = 0
        self.cgroup: CgroupBase | None = None

    # ---- template lifecycle -------------------------------------------------

    async def start(self) -> None:
        if not self.insecure:
            self.cgroup = CgroupBase.create()
        await self.start_template()

    async def start_template(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = launcher.template_argv(theirs.fileno(), self.insecure)
        fds = [theirs.fileno()]
        identity: tuple[int, ...] = ()
        if not self.insecure:
            identity = launcher.identity_fds()
            argv = launcher.bwrap_command(argv, *identity,
                                          cgroup_dir=str(self.cgroup.path) if self.cgroup else None)
            fds += identity
        env = None if not self.insecure else {**launcher.RUN_ENV, "PYTHONPATH": str(
            launcher.SANDBOX_DIR.parent), "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
        self._process = subprocess.Popen(argv, pass_fds=fds, env=env, stdin=subprocess.DEVNULL,
                                         stdout=sys.stderr, stderr=sys.stderr)
        theirs.close()
        for fd in identity:
            os.close(fd)
        ours.setblocking(False)
        self._ctrl = ours
        self._generation += 1
        hello = await asyncio.wait_for(loop.sock_recv(ours, 65536), TEMPLATE_START_S)
        if not hello:
            raise RuntimeError("the sandbox template exited while starting (see the log above)")
        loop.add_reader(ours.fileno(), self._on_ctrl_readable, ours, self._generation)
        self._started.set()
        for _ in range(self.size):
            self.spawn_spare()

    def _on_ctrl_readable(self, ctrl: socket.socket, generation: int) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 65536, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            asyncio.get_running_loop().remove_reader(ctrl.fileno())
            if generation == self._generation:
                asyncio.get_running_loop().create_task(self.handle_dead_template())
            return
        message = json.loads(data)
        task = asyncio.get_running_loop().create_task(
            self._await_ready(socket.socket(fileno=fds[0]), message["slot"], generation))
        self._warmers.add(task)
        task.add_done_callback(self._warmers.discard)

    async def handle_dead_template(self) -> None:
        log.error("the sandbox template died; in-flight runs end as killed; restarting")
        self._retire_template()
        if self._closing:
            return
        self.template_restarts += 1
        await asyncio.sleep(min(5.0, 0.5 * self.template_restarts))
        with contextlib.suppress(Exception):
            await self.start_template()

    def _retire_template(self) -> None:
        self._generation += 1  # spares of the old template are now stale
        self._warming = 0
        while not self._ready.empty():
            spare = self._ready.get_nowait()
            self._release_slot(spare.slot)
            spare.close()
        if self._ctrl is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._ctrl.fileno())
            self._ctrl.close()
            self._ctrl = None
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        if self._process is not None:
            self._process.wait()

    # ---- spares -------------------------------------------------------------

    def spawn_spare(self) -> None:
        if self._ctrl is None or self._closing or not self._free_slots:
            return
        slot = self._free_slots.pop(0)
        message = {"type": "spawn", "id": next(self._ids), "slot": slot,
                   "limits": dataclasses.asdict(self.limits),
                   "cgroup": {"base": str(self.cgroup.path), "version": self.cgroup.version}
                   if self.cgroup else None}
        try:
            self._ctrl.send(json.dumps(message).encode())
        except OSError:
            self._release_slot(slot)
            return
        self._warming += 1

    async def _await_ready(self, sock: socket.socket, slot: int, generation: int) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2**20)
        spare = Spare(slot, generation, reader, writer)
        try:
            frame = await asyncio.wait_for(wire.read_frame_async(reader, 2**20), 120)
        except (TimeoutError, ValueError):
            frame = None
        except asyncio.CancelledError:
            spare.close()
            raise
        if generation != self._generation:
            spare.close()
            return
        self._warming -= 1
        if frame is None or frame.get("type") != "ready":
            log.warning("a spare failed while starting; replacing it")
            spare.close()
            self._release_slot(slot)
            self.spawn_spare()
            return
        spare.context = frame
        self.context = {"device": frame["device"], "versions": frame["versions"]}
        self._ready.put_nowait(spare)

    def _release_slot(self, slot: int) -> None:
        self._free_slots.append(slot)

    async def take_spare(self) -> Spare:
        while True:
            spare = await asyncio.wait_for(self._ready.get(), TEMPLATE_START_S)
            # A dead template takes its spares with it, even before the pool
            # has read the news from the control socket.
            alive = self._process is not None and self._process.poll() is None
            if alive and spare.generation == self._generation and not spare.reader.at_eof():
                break
            spare.close()
            self._release_slot(spare.slot)
        self.spawn_spare()  # its replacement warms up while this one runs
        return spare

    # ---- runs ---------------------------------------------------------------

    async def run(self, request: RunRequest, client: str = "anonymous") -> RunResult:
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

    async def _run_on_spare(self, request: RunRequest) -> RunResult:
        limits = self.limits.with_timeout(request.timeout_s)
        try:
            spare = await self.take_spare()
        except TimeoutError:
            return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                    "no sandbox became ready in time", framework=request.framework)
        message = {"type": "run", "request": request.model_dump(), "wall_s": limits.wall_s,
                   "cpu_s": limits.cpu_s}
        try:
            spare.writer.write(wire.encode(message))
            await spare.writer.drain()
            frame = await asyncio.wait_for(
                wire.read_frame_async(spare.reader, limits.result_bytes + 4 * limits.output_bytes
                                      + 2**20),
                limits.wall_s * (request.repeat if request.repeat > 1 else 1) + RESULT_GRACE_S)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("run lost: %r", exc)
            frame = None
        finally:
            spare.close()
            self._release_slot(spare.slot)
        if frame is None or frame.get("type") != "result":
            return RunResult.failed(RunStatus.killed, "SandboxLost",
                                    "the sandbox went away during the run",
                                    framework=request.framework, **self.context)
        result = frame["result"]
        result.setdefault("framework", request.framework)
        result.setdefault("device", self.context["device"])
        result.setdefault("versions", self.context["versions"])
        return RunResult.model_validate(result)

    # ---- health and shutdown -------------------------------------------------

    def stats(self) -> dict[str, Any]:
        alive = self._process is not None and self._process.poll() is None
        return {"slots": self.size, "busy": self.queue.busy, "queued": self.queue.waiting,
                "spares_ready": self._ready.qsize(), "spares_warming": self._warming,
                "template_alive": alive, "template_restarts": self.template_restarts,
                "sandbox": "insecure" if self.insecure else "bubblewrap+namespaces+seccomp",
                "memory_cgroups": f"v{self.cgroup.version}" if self.cgroup else None}

    async def stop(self, drain_s: float = 10.0) -> None:
        """Refuse new runs, fail queued ones, give running ones `drain_s`, then end all."""
        self._closing = True
        self.queue.close()
        current = asyncio.current_task()
        running = [t for t in self._running if t is not current and not t.done()]
        if running:
            await asyncio.wait(running, timeout=drain_s)
        self._retire_template()
        if self.cgroup is not None:
            self.cgroup.remove()
        for task in [*running, *self._warmers]:
            task.cancel()
        await asyncio.gather(*self._warmers, return_exceptions=True)


def _rejected(message: str) -> RunResult:
    return RunResult.failed(RunStatus.rejected, "Rejected", message)
