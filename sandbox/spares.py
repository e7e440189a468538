"""The pool's spares: the reserve of ready ones, the slots they hold, fresh ones on demand.

    pool ──spawn(framework)──> template ──SpareSpawned + socket──> _await_ready
                                                                      │ SpareReady
    take(framework) <──────────────── ready queue (one per framework) ┘

A slot is a uid for a process that is running, ready or warming; a spare
takes one when asked for and gives it back when closed. A spare serves
exactly one run; the pool asks for its replacement as soon as it is
taken, so the next run finds one warm. A *fresh* spare is made for one
run that configures TensorFlow's runtime itself: it warms nothing and goes
to that run alone; so is a *port's* spare, with the port's limits and its two
files passed to the template beside the order (`take_port`). A *prepared*
spare (`setups.py`) made its run's import or runtime setting before the run:
once a run asks for one, one is kept ready for the next, while asked for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from sandbox import wire
from sandbox.executor import ExecutorContext
from sandbox.limits import Limits
from sandbox.messages import MAX_READY_BYTES, CgroupSpec, SpareReady, SpareSpawned, SpawnSpare
from sandbox.protocol import FRAMEWORKS, Framework
from sandbox.reserve import Reserve, needs_fresh_runtime
from sandbox.setups import setup_for
from sandbox.stats import ReserveStats
from sandbox.template_process import TEMPLATE_START_S, TemplateProcess

log = logging.getLogger("sidebyside.pool")
RESERVE_FLOOR_DIVISOR = 4  # while runs are in flight, refill only below target / 4
LOST_RETRY_S = 1.0  # a spare whose socket the kernel dropped is replaced after this
READY_WAIT_S = 120.0  # a spare not ready by then is given up (the supervisor's WARM_UP_S)
# Past this a pending spare has no wait left that could bring it (READY_WAIT_S, and the
# template's own start): it is given up, and health says degraded until then.
STUCK_AFTER_S = READY_WAIT_S + 30.0
PREPARED_KEEP_S = 600.0  # a prepared kind is kept ready this long after a run last asked
# At most this many kinds at once, the ones asked for last: a lesson's steps need two
# or three, and snippets can't make the pool hold a spare of every kind beyond its budget.
MAX_PREPARED_KINDS = 4


@dataclasses.dataclass
class Spare:
    slot: int
    framework: Framework
    generation: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class Spares:
    def __init__(self, templates: dict[Framework, TemplateProcess], reserve: Reserve,
                 limits: Limits, slots: int, in_flight: Callable[[], bool]) -> None:
        self.templates, self.reserve, self.limits = templates, reserve, limits
        self.in_flight = in_flight  # runs in flight or waiting: draw the reserve down
        self.cgroup: CgroupSpec | None = None  # where each run's cgroups go
        self.context = ExecutorContext()  # from the last spare that was ready
        self.closing = False
        self._ready: dict[Framework, asyncio.Queue[Spare]] = {
            f: asyncio.Queue() for f in FRAMEWORKS}
        # Every spare asked for and not yet ready (or given up): its framework and slot.
        # Each way out of here hands its slot back once, whatever went wrong on the way:
        # a template that died, a socket the kernel dropped, a spare that never said ready.
        self._pending: dict[int, tuple[Framework, int]] = {}
        self._asked_at: dict[int, float] = {}  # monotonic time each pending spare was asked for
        self._free_slots = list(range(slots))
        self._ids = itertools.count()
        self.warmers: set[asyncio.Task[Any]] = set()
        # Fresh spares are made for one run that waits for it, by spare id.
        self._fresh: dict[int, tuple[Framework, asyncio.Future[Spare | None]]] = {}
        # Prepared spares (one per kind): each kind's framework and when a run last
        # asked for it; the ready ones; the pending ones' kinds, by spare id.
        self._asked_setups: dict[str, tuple[Framework, float]] = {}
        self._prepared: dict[str, Spare] = {}
        self._preparing: dict[int, str] = {}

    def stats(self) -> dict[Framework, ReserveStats]:
        targets = self.reserve.targets()
        return {f: ReserveStats(
            ready=self._ready[f].qsize(), warming=self._warming(f), target=targets[f],
            prepared_kinds=sum(kind == f for kind, _ in self._asked_setups.values()),
            prepared=sum(spare.framework == f for spare in self._prepared.values()),
            preparing=sum(self._pending[i][0] == f for i in self._preparing
                          if i in self._pending)) for f in FRAMEWORKS}

    def _warming(self, framework: Framework) -> int:
        """Spares on their way to the reserve (fresh ones belong to their run)."""
        return sum(1 for spare_id, (kind, _) in self._pending.items() if kind == framework
                   and spare_id not in self._fresh and spare_id not in self._preparing)

    def _settle(self, spare_id: int) -> int | None:
        """The slot of a spare no longer pending; None if it was settled already."""
        self._asked_at.pop(spare_id, None)
        pending = self._pending.pop(spare_id, None)
        return pending[1] if pending is not None else None

    def stuck(self, now: float | None = None) -> str | None:
        """Why the reserve's accounting has stopped moving, if it has: a spare asked for
        longer ago than any wait for one lasts (health reports it as degraded)."""
        now = time.monotonic() if now is None else now
        late = [(now - at, self._pending[i][0]) for i, at in self._asked_at.items()
                if now - at > STUCK_AFTER_S and i in self._pending]
        if not late:
            return None
        age, framework = max(late)
        return f"a {framework} spare asked for {age:.0f} s ago never arrived"

    def _sweep(self) -> None:
        """Give up the spares no wait can bring any more: their slots come back."""
        now = time.monotonic()
        for spare_id in [i for i, at in self._asked_at.items() if now - at > STUCK_AFTER_S]:
            log.warning("a spare asked for %.0f s ago never arrived; replacing it",
                        now - self._asked_at[spare_id])
            self._give_up(spare_id)

    def refill(self) -> None:
        """Spawn spares up to each framework's target; retire ready ones beyond it.

        While runs are in flight the reserve is drawn down to a quarter of its
        target before anything is spawned: a burst is served from spares made
        in the quiet before it, and its runs don't share the CPU (nor the
        template's loop) with forks and warm-ups. The pool calls this again
        once runs pause: then the reserve fills up behind the burst.
        """
        self._sweep()
        running = self.in_flight()
        for framework, target in self.reserve.targets().items():
            ready = self._ready[framework]
            floor = max(1, target // RESERVE_FLOOR_DIVISOR) if running else target
            while ready.qsize() + self._warming(framework) < floor:
                if self.spawn(framework) is None:
                    break
            while ready.qsize() > target:  # demand moved on: give its memory to the other kind
                spare = ready.get_nowait()
                spare.close()  # the supervisor sees the hang-up and ends the spare
                self.release_slot(spare.slot)
        self._prepare(making=not running)

    def _prepare(self, making: bool) -> None:
        """One ready spare of each prepared kind a run asked for lately; none of the others.

        Made only while no run is in flight (`making`), like the reserve's refills."""
        now = time.monotonic()
        for setup, (framework, asked_at) in list(self._asked_setups.items()):
            if now - asked_at > PREPARED_KEEP_S:
                del self._asked_setups[setup]
                self._drop_prepared(setup)
            elif making and setup not in self._prepared \
                    and setup not in self._preparing.values():
                self.spawn(framework, setup=setup)

    def _drop_prepared(self, setup: str) -> None:
        spare = self._prepared.pop(setup, None)
        if spare is not None:
            spare.close()
            self.release_slot(spare.slot)

    def spawn(self, framework: Framework, fresh: bool = False, limits: Limits | None = None,
              files: tuple[int, ...] = (), setup: str | None = None) -> int | None:
        """Ask the template for a spare; its id, or None when none can be made now.

        `limits` and `files`: a port's spare (fresh), its own limits and its files.
        `setup`: a prepared spare's kind (`setups.py`).
        """
        template = self.templates[framework]
        if template.ctrl is None or self.closing or not self._free_slots:
            return None
        slot = self._free_slots.pop(0)
        spare_id = next(self._ids)
        order = SpawnSpare(
            id=spare_id, slot=slot, framework=framework,
            warm_ups=self.reserve.warm_ups(framework),
            name=f"{framework}-{template.generation}-{spare_id}",
            limits=limits or self.limits, fresh=fresh, cgroup=self.cgroup, port=bool(files),
            setup=setup)
        if not template.send(order, files):
            self.release_slot(slot)
            return None
        self._pending[spare_id] = (framework, slot)
        self._asked_at[spare_id] = time.monotonic()
        if fresh:
            self._fresh[spare_id] = (framework, asyncio.get_running_loop().create_future())
        if setup is not None:
            self._preparing[spare_id] = setup
        return spare_id

    def spawned(self, sock: socket.socket | None, spawned: SpareSpawned,
                generation: int) -> None:
        """The template forked it: wait for it to be ready, off the control socket's reader.

        With no socket (the kernel dropped the descriptor: the server is at its
        limit), the spare is lost: its slot comes back, and a replacement is asked
        for a little later rather than in a loop that would drop it again.
        """
        if sock is None:
            log.warning("a spare's socket was lost (out of descriptors?); replacing it")
            self._give_up(spawned.id)
            asyncio.get_running_loop().call_later(LOST_RETRY_S, self.refill)
            return
        task = asyncio.get_running_loop().create_task(
            self._await_ready(sock, spawned.slot, spawned.framework, generation, spawned.id))
        self.warmers.add(task)
        task.add_done_callback(self.warmers.discard)

    async def _await_ready(self, sock: socket.socket, slot: int, framework: Framework,
                           generation: int, spare_id: int) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_READY_BYTES)
        spare = Spare(slot, framework, generation, reader, writer)
        ready: SpareReady | None = None
        try:
            frame = await asyncio.wait_for(wire.read_body_async(reader, MAX_READY_BYTES),
                                           READY_WAIT_S)
            ready = None if frame is None else wire.parse_frame(SpareReady, frame)
        except (TimeoutError, ValueError):
            pass
        except asyncio.CancelledError:
            spare.close()
            raise
        waiting = self._fresh.pop(spare_id, (framework, None))[1]
        setup = self._preparing.pop(spare_id, None)
        owed = self._settle(spare_id)  # None: `retire` took its slot back already
        if owed is None or generation != self.templates[framework].generation:
            spare.close()  # its template died meanwhile
            if owed is not None:
                self.release_slot(owed)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            return
        if waiting is not None:  # made for one run: it goes to that run, ready or not
            if ready is None or waiting.done():
                spare.close()
                self.release_slot(slot)
            if not waiting.done():
                waiting.set_result(spare if ready is not None else None)
            return
        if ready is None or ready.framework != framework:
            log.warning("a spare failed while starting; replacing it")
            spare.close()
            self.release_slot(slot)
            self.refill()
            return
        self.context = ExecutorContext(device=ready.device, versions=ready.versions)
        if setup is None:
            self._ready[framework].put_nowait(spare)
        elif setup in self._prepared or setup not in self._asked_setups:
            spare.close()  # one of its kind is ready already, or none is asked for any more
            self.release_slot(slot)
        else:
            self._prepared[setup] = spare

    def release_slot(self, slot: int) -> None:
        self._free_slots.append(slot)

    async def take(self, framework: Framework, code: str = "") -> Spare:
        """A ready spare for this run (raises TimeoutError when none comes)."""
        self.reserve.record(framework, code)
        setup = setup_for(framework, code)
        if setup is not None:
            self._asked_setups.pop(setup, None)
            self._asked_setups[setup] = (framework, time.monotonic())  # the last asked
            while len(self._asked_setups) > MAX_PREPARED_KINDS:
                oldest = next(iter(self._asked_setups))
                del self._asked_setups[oldest]
                self._drop_prepared(oldest)
            spare = self._take_prepared(setup)
            if spare is not None:
                return spare  # the next of its kind is made once runs pause (`refill`)
        if needs_fresh_runtime(framework, code):
            return await self._take_fresh(framework)
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
            self.release_slot(spare.slot)
            self.refill()
        self.refill()  # its replacement warms up while this one runs
        return spare

    def _take_prepared(self, setup: str) -> Spare | None:
        spare = self._prepared.pop(setup, None)
        if spare is None:
            return None
        template = self.templates[spare.framework]
        if template.alive and spare.generation == template.generation \
                and not spare.reader.at_eof():
            return spare
        spare.close()
        self.release_slot(spare.slot)
        return None

    async def take_port(self, limits: Limits, files: tuple[int, ...]) -> Spare:
        """A fresh TensorFlow spare for one port: its limits, and its files (model, archive,
        inputs)."""
        return await self._take_fresh("tensorflow", limits, files)

    async def _take_fresh(self, framework: Framework, limits: Limits | None = None,
                          files: tuple[int, ...] = ()) -> Spare:
        """A spare made for this run alone, that started no runtime (raises TimeoutError)."""
        spare_id = self.spawn(framework, fresh=True, limits=limits, files=files)
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

    def _give_up(self, spare_id: int) -> None:
        """A pending spare that will never be ready: its slot back, its run (if fresh) told."""
        slot = self._settle(spare_id)
        if slot is not None:
            self.release_slot(slot)
        self._preparing.pop(spare_id, None)
        fresh = self._fresh.pop(spare_id, None)
        if fresh is not None and not fresh[1].done():
            fresh[1].set_result(None)

    def retire(self, framework: Framework) -> None:
        """Its template died: every spare it still owed gives its slot back, the runs waiting
        for a fresh one hear at once, and its ready spares are dropped."""
        for spare_id in [i for i, (kind, _) in self._pending.items() if kind == framework]:
            self._give_up(spare_id)
        while not self._ready[framework].empty():
            spare = self._ready[framework].get_nowait()
            self.release_slot(spare.slot)
            spare.close()
        for setup in [kind for kind, spare in self._prepared.items()
                      if spare.framework == framework]:
            self._drop_prepared(setup)
