"""A lesson's missing outputs, computed on the server's own time: capped and learner-last.

Opening a lesson shows its cached outputs and computes the missing ones in
the background. That work is nobody's click, so it must never cost a
learner a turn and never grow with the views:

- at most `PENDING_PER_VIEWER` of one viewer's (learner id, and address)
  and `PENDING_PER_PACK` of one pack version's are pending at once; a side
  beyond them stays unrun on the page until a later view (or the Run button);
- one precompute run at a time, server-wide, and only while no run waits and
  a slot is free: a lower share than any learner's;
- its result is cached whatever it was (a timeout too, for a while: see
  `OutputCache`), so a view doesn't queue the same doomed run again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from sandbox.executor import Executor
from sandbox.fairqueue import Client

PENDING_PER_VIEWER = 8
PENDING_PER_ADDRESS = 32
PENDING_PER_PACK = 32
IDLE_POLL_S = 0.2  # how often a waiting precompute run looks for an idle pool
# Uncapped in the fair queue: the caps above bound it, and it queues only when nobody waits.
PRECOMPUTE_CLIENT = Client(learner="precompute", address="server", capped=False)


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Whose page view asked: their learner id and address; and the pack version shown."""

    learner: str
    address: str
    pack: str


class Precompute:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._pending: collections.Counter[str] = collections.Counter()
        self._turn = asyncio.Lock()

    def _counters(self, viewer: Viewer) -> list[tuple[str, int]]:
        return [(f"learner:{viewer.learner}", PENDING_PER_VIEWER),
                (f"address:{viewer.address}", PENDING_PER_ADDRESS),
                (f"pack:{viewer.pack}", PENDING_PER_PACK)]

    def admit(self, viewer: Viewer) -> bool:
        """Take one pending place for this viewer, address and pack, if all have room."""
        counters = self._counters(viewer)
        if any(self._pending[key] >= cap for key, cap in counters):
            return False
        for key, _ in counters:
            self._pending[key] += 1
        return True

    def release(self, viewer: Viewer) -> None:
        for key, _ in self._counters(viewer):
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]

    @property
    def pending(self) -> int:
        return sum(n for key, n in self._pending.items() if key.startswith("pack:"))

    def _idle(self) -> bool:
        stats = self.executor.stats()
        return stats.queued == 0 and stats.busy < stats.slots

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """The precompute's one turn, once the pool is idle; the run happens inside it."""
        async with self._turn:
            while not self._idle():
                await asyncio.sleep(IDLE_POLL_S)
            yield
