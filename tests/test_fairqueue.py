"""The fair queue's caps on waiting runs: per learner, per address, in all (no sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sandbox.fairqueue import Client, FairQueue, QueueClosed, QueueFull

HOLDER = Client("learner:holder", "10.0.0.1")


def scenario(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(fn())


async def busy_queue(*, slots: int = 1, total: int = 100, learner: int = 4,
                     address: int = 32) -> FairQueue:
    """A queue whose every slot is taken, so the next acquire waits."""
    queue = FairQueue(slots, total, learner, address)
    for _ in range(slots):
        await queue.acquire(HOLDER)
    return queue


async def enqueue(queue: FairQueue, client: Client) -> asyncio.Task[None]:
    """Start waiting for a slot; asserts the run was queued, not refused."""
    task = asyncio.create_task(queue.acquire(client))
    await asyncio.sleep(0)
    assert not task.done(), task.exception()
    return task


async def drain(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_one_learner_cannot_fill_the_queue() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=2)
        flooder = Client("learner:flood", "10.0.0.66")
        tasks = [await enqueue(queue, flooder) for _ in range(2)]
        with pytest.raises(QueueFull, match="you already have 2 runs waiting") as refused:
            await queue.acquire(flooder)
        assert refused.value.retry_after_s >= 1
        # another learner, even at the same address, still gets in line
        tasks.append(await enqueue(queue, Client("learner:classmate", "10.0.0.66")))
        tasks.append(await enqueue(queue, Client("learner:other", "10.0.0.7")))
        assert queue.waiting == 4
        assert queue.position(Client("learner:other", "10.0.0.7")) == 3
        await drain(tasks)

    scenario(go)


def test_rotating_learner_cookies_from_one_address_cannot_fill_the_queue() -> None:
    async def go() -> None:
        queue = await busy_queue(total=10, learner=1, address=3)
        tasks = [await enqueue(queue, Client(f"learner:made-up-{i}", "6.6.6.6"))
                 for i in range(3)]
        for i in range(3, 20):  # a fresh cookie per run does not help
            with pytest.raises(QueueFull, match="your address already has 3 runs waiting"):
                await queue.acquire(Client(f"learner:made-up-{i}", "6.6.6.6"))
        assert queue.waiting == 3  # well below the global cap of 10
        tasks.append(await enqueue(queue, Client("learner:honest", "1.2.3.4")))
        assert queue.waiting == 4
        await drain(tasks)

    scenario(go)


def test_the_global_cap_still_holds_across_clients() -> None:
    async def go() -> None:
        queue = await busy_queue(total=3, learner=1, address=1)
        tasks = [await enqueue(queue, Client(f"learner:{i}", f"10.0.1.{i}")) for i in range(3)]
        with pytest.raises(QueueFull, match="all sandboxes are busy"):
            await queue.acquire(Client("learner:late", "10.0.2.1"))
        await drain(tasks)

    scenario(go)


def test_slots_still_go_round_robin_between_learners() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=3)
        order: list[str] = []

        async def one(client: Client) -> None:
            await queue.acquire(client)
            order.append(client.learner)
            queue.release()

        a, b, c = (Client(f"learner:{x}", "10.0.0.5") for x in "abc")
        tasks = []
        for client in (a, a, a, b, c):
            tasks.append(asyncio.create_task(one(client)))
            await asyncio.sleep(0)
        assert queue.position(b) == 2 and queue.position(Client("zzz", "10.0.0.5")) is None
        queue.release()  # the holder is done
        await asyncio.gather(*tasks)
        assert order == ["learner:a", "learner:b", "learner:c", "learner:a", "learner:a"]
        assert queue.waiting == 0 and queue.free == 1

    scenario(go)


def test_cancelled_waits_free_the_learner_and_address_counts() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=2, address=2)
        me = Client("learner:me", "10.0.0.9")
        tasks = [await enqueue(queue, me) for _ in range(2)]
        with pytest.raises(QueueFull):
            await queue.acquire(me)
        await drain(tasks)  # the browser went away
        assert queue.waiting == 0 and queue.position(me) is None
        assert not queue._by_address  # made-up clients leave nothing behind
        tasks = [await enqueue(queue, me) for _ in range(2)]  # room again
        await drain(tasks)

    scenario(go)


def test_released_slots_free_the_counts_of_who_got_them() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=1, address=1)
        me = Client("learner:me", "10.0.0.9")
        first = await enqueue(queue, me)
        with pytest.raises(QueueFull):
            await queue.acquire(me)
        queue.release()  # the holder finishes: my run starts, so it no longer waits
        await first
        second = await enqueue(queue, me)
        await drain([second])

    scenario(go)


def test_the_servers_own_work_is_bound_only_by_the_global_cap() -> None:
    async def go() -> None:
        queue = await busy_queue(total=6, learner=1, address=1)
        precompute = Client("precompute", "server", capped=False)
        tasks = [await enqueue(queue, precompute) for _ in range(5)]
        # a learner's run still goes ahead of the rest of the precompute
        tasks.append(await enqueue(queue, Client("learner:me", "10.0.0.9")))
        assert queue.position(Client("learner:me", "10.0.0.9")) == 2
        with pytest.raises(QueueFull, match="all sandboxes are busy"):
            await queue.acquire(precompute)
        await drain(tasks)

    scenario(go)


def test_close_fails_waiting_runs_and_forgets_them() -> None:
    async def go() -> None:
        queue = await busy_queue()
        task = await enqueue(queue, Client("learner:me", "10.0.0.9"))
        queue.close()
        with pytest.raises(QueueClosed):
            await task
        assert queue.waiting == 0
        with pytest.raises(QueueClosed):
            await queue.acquire(Client("learner:me", "10.0.0.9"))

    scenario(go)


def test_a_class_in_a_burst_gets_its_share_not_the_whole_pool() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=4)
        order: list[str] = []

        async def one(client: Client) -> None:
            await queue.acquire(client)
            order.append(client.learner)
            queue.release()

        klass = [Client(f"class:K:{i}", "10.0.3.1", group="class:K") for i in range(4)]
        other = [Client(f"class:Q:{i}", "10.0.4.1", group="class:Q") for i in range(2)]
        alone = Client("learner:self-study", "10.0.5.1")
        tasks = []
        for client in [*klass, *other, alone]:  # the big class arrives first
            tasks.append(asyncio.create_task(one(client)))
            await asyncio.sleep(0)
        # turns go round the groups: K, Q, self-study, K, Q, K, K
        assert queue.position(alone) == 3
        assert queue.position(other[1]) == 5
        assert queue.position(klass[3]) == 7
        queue.release()
        await asyncio.gather(*tasks)
        assert order == ["class:K:0", "class:Q:0", "learner:self-study", "class:K:1",
                         "class:Q:1", "class:K:2", "class:K:3"]
        assert queue.waiting == 0 and not queue._groups

    scenario(go)


def test_within_a_class_learners_take_turns_and_keep_their_own_caps() -> None:
    async def go() -> None:
        queue = await busy_queue(learner=2)
        a, b = (Client(f"class:K:{x}", "10.0.3.1", group="class:K") for x in "ab")
        tasks = [await enqueue(queue, a), await enqueue(queue, a), await enqueue(queue, b)]
        with pytest.raises(QueueFull, match="you already have 2 runs waiting"):
            await queue.acquire(a)
        assert queue.position(b) == 2
        # the same learner id in another group is someone else
        assert queue.position(Client("class:K:a", "10.0.3.1")) is None
        await drain(tasks)
        assert not queue._groups and not queue._by_address

    scenario(go)


def test_new_capacity_goes_to_waiters_in_turn_and_a_shrink_waits_for_runs_to_end() -> None:
    async def go() -> None:
        queue = await busy_queue(slots=1)
        ana = await enqueue(queue, Client("learner:ana", "10.0.0.2"))
        ben = await enqueue(queue, Client("learner:ben", "10.0.0.3"))
        queue.resize(2)  # a worker joined: one more slot, to the first in turn
        await asyncio.sleep(0)
        assert ana.done() and not ben.done() and queue.free == 0
        queue.resize(1)  # it left: the two runs holding slots keep them
        assert queue.free == -1
        queue.release()  # one of them ends: still no room for ben
        await asyncio.sleep(0)
        assert not ben.done() and queue.free == 0
        queue.release()
        await asyncio.sleep(0)
        assert ben.done()
    scenario(go)


def test_failing_the_waiters_answers_each_of_them_and_leaves_the_queue_open() -> None:
    async def go() -> None:
        queue = await busy_queue(slots=1)
        waiting = [await enqueue(queue, Client(f"learner:{n}", "10.0.0.2")) for n in "abc"]
        queue.fail_waiting(LookupError("no worker available for gpu"))
        for task in waiting:
            with pytest.raises(LookupError, match="no worker available for gpu"):
                await task
        assert queue.waiting == 0 and queue.position(Client("learner:a", "10.0.0.2")) is None
        queue.release()
        await queue.acquire(Client("learner:d", "10.0.0.4"))  # not closed: runs go on
    scenario(go)
