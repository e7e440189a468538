"""The spares' slot accounting with a real pool: every slot comes back, whichever way a
spare on its way is lost (its template killed while it warms, its socket dropped by a
server out of descriptors), and none comes back twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.messages import SpareSpawned
from sandbox.pool import Pool
from sandbox.protocol import RunRequest

QUICK = RunRequest(framework="pytorch", code="print('hi')")
CLIENT = Client("learner", "10.0.0.1")


def accounted(pool: Pool) -> list[int]:
    """Every slot, where it is now: free, held by a ready spare, or owed by a pending one."""
    spares = pool.spares
    ready = [s.slot for queue in spares._ready.values() for s in queue._queue]  # type: ignore[attr-defined]
    return sorted([*spares._free_slots, *ready, *(slot for _, slot in spares._pending.values())])


async def settled(pool: Pool, slots: int) -> None:
    """Wait for the reserve to stop moving, then check no slot is lost or doubled."""
    for _ in range(300):
        stats = pool.stats()
        if stats.degraded is None and stats.spares_warming == 0 and stats.spares_ready:
            break
        await asyncio.sleep(0.2)
    assert accounted(pool) == list(range(slots))


@contextlib.asynccontextmanager
async def settled_pool() -> AsyncIterator[tuple[Pool, int]]:
    """A real pool whose reserve has settled, and how many slots it accounts for."""
    pool = Pool(Limits(wall_s=5), size=2, spares_memory_mb=1024)
    await pool.start()
    try:
        slots = len(accounted(pool))
        await settled(pool, slots)
        yield pool, slots
    finally:
        await pool.stop()


def test_a_template_killed_while_its_spares_warm_gives_every_slot_back() -> None:
    async def scenario() -> None:
        async with settled_pool() as (pool, slots):
            for _ in range(3):
                # draw the reserve down, then kill the template while replacements warm
                await asyncio.gather(*(pool.run(QUICK, CLIENT) for _ in range(4)))
                pool.spares.refill()
                assert pool.stats().spares_warming > 0
                process = pool.templates["pytorch"].process
                assert process is not None
                os.kill(process.pid, signal.SIGKILL)
                await settled(pool, slots)
            assert (await pool.run(QUICK, CLIENT)).stdout == "hi\n"

    asyncio.run(scenario())


def test_a_spare_whose_socket_was_dropped_gives_its_slot_back_once() -> None:
    async def scenario() -> None:
        async with settled_pool() as (pool, slots):
            await asyncio.gather(*(pool.run(QUICK, CLIENT) for _ in range(4)))
            spare_id = pool.spares.spawn("pytorch")
            assert spare_id is not None
            framework, slot = pool.spares._pending[spare_id]
            # what the control socket's reader passes on when recv_fds brought no descriptor;
            # the template's real reply for the same spare arrives after it and is closed
            pool.spares.spawned(None, SpareSpawned(id=spare_id, slot=slot, framework=framework,
                                                   pid=1), pool.templates[framework].generation)
            assert spare_id not in pool.spares._pending and slot in pool.spares._free_slots
            await settled(pool, slots)
            assert (await pool.run(QUICK, CLIENT)).stdout == "hi\n"

    asyncio.run(scenario())


def test_a_spare_that_never_arrives_makes_health_degraded_until_it_is_given_up() -> None:
    from sandbox.spares import STUCK_AFTER_S

    async def scenario() -> None:
        async with settled_pool() as (pool, slots):
            assert pool.stats().degraded is None
            # a spare asked for whose SpareSpawned never came (a template that lost the order)
            spares = pool.spares
            slot = spares._free_slots.pop(0)
            spares._pending[10_000] = ("tensorflow", slot)
            spares._asked_at[10_000] = time.monotonic() - STUCK_AFTER_S - 1
            stuck = pool.stats().degraded
            assert stuck is not None and "never arrived" in stuck and "tensorflow" in stuck
            spares.refill()  # the next refill gives it up: its slot is back
            assert pool.stats().degraded is None and slot in spares._free_slots
            assert accounted(pool) == list(range(slots))

    asyncio.run(scenario())
