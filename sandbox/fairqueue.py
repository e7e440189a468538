"""Slots for runs, handed out round-robin between groups, then learners, with bounded waits.

One learner pasting a loop of 50 runs must not starve the other 29 in a
classroom: each learner has its own FIFO, and a freed slot goes to the next
learner in turn. Learners belong to a group (a live class; everyone else
shares the default group ""), and turns go round the groups first: a class
of 30 in a burst gets its share of the pool, not all of it, and a second
class or the self-study learners get theirs. Waiting is bounded three ways,
each answered with
QueueFull (HTTP 429) instead of an unbounded wait:

- `max_waiting` runs in all, so the server's memory and the wait stay bounded;
- `max_waiting_per_learner` per learner id, so one learner can't fill the line;
- `max_waiting_per_address` per peer address, because a learner id is a
  cookie the client picks: a flood that makes up a new one per run still
  comes from one address. The address cap is looser than the learner's, as
  a classroom behind one NAT or proxy shares an address.

Only waiting runs count: a running one already holds its slot.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Client:
    """Who a run is queued for.

    `learner` is the unit of round-robin within its `group`; `address` the
    peer's IP. `capped` is False only for the server's own work
    (precomputing a lesson's outputs, `sidebyside check`): it is bounded by
    the lessons, not by a person, and a lesson has more steps than a
    learner's cap. `group` is a live class ("class:CODE"); "" is everyone
    else, self-study learners and the server's own work.
    """

    learner: str
    address: str
    capped: bool = True
    group: str = ""


class QueueFull(Exception):
    def __init__(self, retry_after_s: int, reason: str = "all sandboxes are busy") -> None:
        super().__init__(f"{reason}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class QueueClosed(Exception):
    pass


_Waiter = tuple[asyncio.Future[None], Client]
_Learners = collections.OrderedDict[str, collections.deque[_Waiter]]


class FairQueue:
    def __init__(self, slots: int, max_waiting: int, max_waiting_per_learner: int,
                 max_waiting_per_address: int) -> None:
        self.slots = slots
        self.free = slots
        self.max_waiting = max_waiting
        self.max_waiting_per_learner = max_waiting_per_learner
        self.max_waiting_per_address = max_waiting_per_address
        self.average_run_s = 0.5  # refined as runs finish; only used for Retry-After
        self.closed = False
        # group -> learner -> its waiters, oldest first; each dict's order is
        # the round-robin turn at its level
        self._groups: collections.OrderedDict[str, _Learners] = collections.OrderedDict()
        # address -> waiting runs; an address leaves when its count drops to 0,
        # so made-up clients leave nothing behind
        self._by_address: collections.Counter[str] = collections.Counter()

    @property
    def waiting(self) -> int:
        return self._by_address.total()

    @property
    def busy(self) -> int:
        return self.slots - self.free

    def position(self, client: Client) -> int | None:
        """1-based place of the learner's next run in line, None if it has none waiting.

        Found by playing `release` forward on counts alone (the line is at
        most `max_waiting` long).
        """
        if client.learner not in self._learners(client.group):
            return None
        turns = collections.deque(
            (group, collections.deque((learner, len(q)) for learner, q in learners.items()))
            for group, learners in self._groups.items())
        place = 0
        while turns:
            group, learners = turns.popleft()
            learner, left = learners.popleft()
            place += 1
            if group == client.group and learner == client.learner:
                return place
            if left > 1:
                learners.append((learner, left - 1))
            if learners:
                turns.append((group, learners))
        return None  # not reached: the learner is in the line

    def retry_after_s(self) -> int:
        return max(1, math.ceil((self.waiting + 1) / max(1, self.slots) * self.average_run_s))

    async def acquire(self, client: Client) -> None:
        if self.closed:
            raise QueueClosed
        if self.free > 0 and not self._groups:
            self.free -= 1
            return
        self._check_room(client)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        learners = self._groups.setdefault(client.group, collections.OrderedDict())
        learners.setdefault(client.learner, collections.deque()).append((future, client))
        self._by_address[client.address] += 1
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot arrived just as the caller gave up
            else:
                self._forget(future, client)
            raise

    def _check_room(self, client: Client) -> None:
        """Raise QueueFull if this client (or everyone) has as many runs waiting as allowed."""
        # The client's own caps first: a flooder is told it is them, not the server.
        if client.capped:
            mine = len(self._learners(client.group).get(client.learner, ()))
            if mine >= self.max_waiting_per_learner:
                raise QueueFull(self.retry_after_s(), f"you already have {_runs(mine)} waiting")
            ours = self._by_address[client.address]
            if ours >= self.max_waiting_per_address:
                raise QueueFull(self.retry_after_s(),
                                f"your address already has {_runs(ours)} waiting")
        if self.waiting >= self.max_waiting:
            raise QueueFull(self.retry_after_s())

    def _forget(self, future: asyncio.Future[None], client: Client) -> None:
        learners = self._learners(client.group)
        queue = learners.get(client.learner)
        if queue is not None and (future, client) in queue:
            queue.remove((future, client))
            if not queue:
                del learners[client.learner]
                if not learners:
                    del self._groups[client.group]
            self._left(client)

    def _learners(self, group: str) -> _Learners:
        return self._groups.get(group) or collections.OrderedDict()

    def _left(self, client: Client) -> None:
        self._by_address[client.address] -= 1
        if self._by_address[client.address] <= 0:
            del self._by_address[client.address]

    def release(self, run_s: float | None = None) -> None:
        if run_s is not None:
            self.average_run_s = 0.8 * self.average_run_s + 0.2 * run_s
        if self.free < 0:  # capacity shrank under the runs holding slots: this slot goes with it
            self.free += 1
            return
        while self._groups:
            group, learners = next(iter(self._groups.items()))
            learner, queue = next(iter(learners.items()))
            future, client = queue.popleft()
            if queue:
                learners.move_to_end(learner)  # next learner's turn in this group
            else:
                del learners[learner]
            if learners:
                self._groups.move_to_end(group)  # next group's turn
            else:
                del self._groups[group]
            self._left(client)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1

    def resize(self, slots: int) -> None:
        """Follow a capacity that changes (remote workers come and go).

        Runs already holding a slot keep it: after a shrink, `free` stays
        below zero until enough of them end.
        """
        self.free += slots - self.slots
        self.slots = slots
        while self.free > 0 and self._groups:
            self.free -= 1
            self.release()  # hands the new slot to the next waiter in turn

    def fail_waiting(self, error: Exception) -> None:
        """Fail every waiting run with `error` (a device's last worker went away)."""
        for learners in self._groups.values():
            for queue in learners.values():
                for future, _ in queue:
                    if not future.done():
                        future.set_exception(error)
        self._groups.clear()
        self._by_address.clear()

    def close(self) -> None:
        """Refuse new runs and fail every waiting one."""
        self.closed = True
        self.fail_waiting(QueueClosed())


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
