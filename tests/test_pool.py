"""The pool's own lifecycle with real processes: backpressure, crashes, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sandbox.fairqueue import FairQueue, QueueFull
from sandbox.limits import Limits
from sandbox.pool import Pool
from sandbox.protocol import RunRequest, RunStatus

SLEEP = RunRequest(framework="pytorch", code="import time\ntime.sleep(1.5)\nprint('slept')")
QUICK = RunRequest(framework="pytorch", code="print('hi')")


def test_slots_go_round_robin_between_clients() -> None:
    async def scenario() -> list[str]:
        queue = FairQueue(slots=1, max_waiting=10)
        await queue.acquire("holder")
        order: list[str] = []

        async def one(client: str) -> None:
            await queue.acquire(client)
            order.append(client)
            queue.release()

        tasks = [asyncio.create_task(one(c)) for c in ("a", "a", "a", "b", "c")]
        await asyncio.sleep(0)
        assert queue.position("b") == 2 and queue.position("zzz") is None
        queue.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "a", "a"]


def test_full_queue_refuses_with_a_retry_time() -> None:
    async def scenario() -> None:
        queue = FairQueue(slots=1, max_waiting=1)
        await queue.acquire("a")
        waiter = asyncio.create_task(queue.acquire("b"))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as refused:
            await queue.acquire("c")
        assert refused.value.retry_after_s >= 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert queue.waiting == 0

    asyncio.run(scenario())


@pytest.mark.slow
def test_pool_backpressure_crash_recovery_and_shutdown() -> None:
    """One pool (starting one costs seconds), several lifecycle checks in order."""

    async def scenario() -> None:
        pool = Pool(Limits(wall_s=5), size=1, queue_size=1)
        await pool.start()
        try:
            # 1. One running, one queued, the third is refused: no unbounded wait.
            first = asyncio.create_task(pool.run(SLEEP, "a"))
            await asyncio.sleep(0.2)
            second = asyncio.create_task(pool.run(SLEEP, "b"))
            await asyncio.sleep(0.2)
            with pytest.raises(QueueFull):
                await pool.run(QUICK, "c")
            assert (await first).stdout == "slept\n" and (await second).status == RunStatus.ok

            # 2. The template dies mid-run: that run says so, the next one works.
            in_flight = asyncio.create_task(pool.run(SLEEP, "a"))
            await asyncio.sleep(0.5)
            assert pool._process is not None
            os.kill(pool._process.pid, signal.SIGKILL)
            lost = await in_flight
            assert lost.status == RunStatus.killed and lost.error is not None
            for _ in range(100):  # the replacement template imports both frameworks
                if pool.stats()["spares_ready"]:
                    break
                await asyncio.sleep(0.3)
            again = await pool.run(QUICK, "a")
            assert again.status == RunStatus.ok and pool.stats()["template_restarts"] == 1

            # 3. Shutdown: the running run drains, the queued one is told why.
            running = asyncio.create_task(pool.run(SLEEP, "a"))
            await asyncio.sleep(0.2)
            queued = asyncio.create_task(pool.run(QUICK, "b"))
            await asyncio.sleep(0.1)
            await pool.stop(drain_s=10)
            assert (await running).status == RunStatus.ok
            refused = await queued
            assert refused.status == RunStatus.rejected and "shutting down" in refused.error.message
            assert (await pool.run(QUICK, "c")).status == RunStatus.rejected
        finally:
            await pool.stop()

    asyncio.run(scenario())
