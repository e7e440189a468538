"""Join attempts per client address, in a sliding minute.

Join codes are short, so guessing them must be slow: each address gets
`per_minute` attempts, right or wrong (a classroom behind one NAT joins
from one address; the setting says so). Memory stays bounded: an address
is forgotten once its minute has passed, and at most `MAX_ADDRESSES` are
tracked (the oldest dropped first).
"""

from __future__ import annotations

import collections
import math
import time

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


class RateLimit:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    def wait_s(self, address: str, now: float | None = None) -> int:
        """0 if an attempt would be allowed now, else the seconds until one is; counts nothing."""
        now = time.monotonic() if now is None else now
        times = self._seen.get(address)
        live = [t for t in times or () if t > now - WINDOW_S]
        if len(live) >= self.per_minute:
            return max(1, math.ceil(live[0] + WINDOW_S - now))
        return 0

    def attempt(self, address: str, now: float | None = None) -> int:
        """Count an attempt; 0 if allowed, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        self._forget_before(now - WINDOW_S)
        times = self._seen.setdefault(address, collections.deque())
        self._seen.move_to_end(address)
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) >= self.per_minute:
            return max(1, math.ceil(times[0] + WINDOW_S - now))
        times.append(now)
        while len(self._seen) > MAX_ADDRESSES:
            self._seen.popitem(last=False)
        return 0

    def _forget_before(self, cutoff: float) -> None:
        # addresses are kept in order of their last attempt
        while self._seen:
            address, times = next(iter(self._seen.items()))
            if times and times[-1] > cutoff:
                break
            del self._seen[address]
