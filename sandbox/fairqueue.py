"""Slots for runs, handed out round-robin between clients, with a bounded wait.

One learner pasting a loop of 50 runs must not starve the other 29 in a
classroom: each client has its own FIFO, and a freed slot goes to the next
client in turn. Past `max_waiting` queued runs the caller is told to come
back later (HTTP 429) instead of waiting without bound.
"""

from __future__ import annotations

import asyncio
import collections
import math


class QueueFull(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"all sandboxes are busy; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class QueueClosed(Exception):
    pass


class FairQueue:
    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.free = slots
        self.max_waiting = max_waiting
        self.average_run_s = 0.5  # refined as runs finish; only used for Retry-After
        self.closed = False
        self._waiting: collections.OrderedDict[str, collections.deque[asyncio.Future[None]]] = (
            collections.OrderedDict())

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @property
    def busy(self) -> int:
        return self.slots - self.free

    def position(self, client: str) -> int | None:
        """1-based place of the client's next run in line, None if it has none waiting."""
        if client not in self._waiting:
            return None
        return list(self._waiting).index(client) + 1

    def retry_after_s(self) -> int:
        return max(1, math.ceil((self.waiting + 1) / self.slots * self.average_run_s))

    async def acquire(self, client: str) -> None:
        if self.closed:
            raise QueueClosed
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        if self.waiting >= self.max_waiting:
            raise QueueFull(self.retry_after_s())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, collections.deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot arrived just as the caller gave up
            else:
                self._forget(client, future)
            raise

    def _forget(self, client: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(client)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[client]

    def release(self, run_s: float | None = None) -> None:
        if run_s is not None:
            self.average_run_s = 0.8 * self.average_run_s + 0.2 * run_s
        while self._waiting:
            client, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(client)  # next client's turn
            else:
                del self._waiting[client]
            if not future.done():
                future.set_result(None)
                return
        self.free += 1

    def close(self) -> None:
        """Refuse new runs and fail every waiting one."""
        self.closed = True
        for queue in self._waiting.values():
            for future in queue:
                if not future.done():
                    future.set_exception(QueueClosed())
        self._waiting.clear()
