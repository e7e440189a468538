"""Attempts per key (a client address, a class) in a sliding window.

Join codes are short, so guessing them must be slow: each address gets
`per_window` attempts a minute, right code or wrong (a classroom behind one
NAT joins from one address; the setting says so).

Memory stays bounded without letting anyone wipe a key's history: a key is
forgotten only once its window has passed, and while the table holds
`max_keys` keys still inside their window, a key it doesn't know is refused
until the oldest one's window passes. A flood of fresh addresses therefore
locks out other fresh addresses for at most one window, but never resets the
count of an address that is being limited.
"""

from __future__ import annotations

import collections
import math
import time

MAX_KEYS = 10_000


class RateLimit:
    def __init__(self, per_window: int, window_s: float = 60.0,
                 max_keys: int = MAX_KEYS) -> None:
        self.per_window, self.window_s, self.max_keys = per_window, window_s, max_keys
        # in order of each key's last counted attempt, so the stale ones are at the front
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())

    def __len__(self) -> int:
        return len(self._seen)

    def wait_s(self, key: str, now: float | None = None) -> int:
        """0 if an attempt would be allowed now, else the seconds until one is; counts nothing."""
        now = time.monotonic() if now is None else now
        self._forget_before(now - self.window_s)
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) < self.max_keys:
                return 0
            oldest = next(iter(self._seen.values()))
            return self._until(oldest[-1], now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.per_window:
            return self._until(times[0], now)
        return 0

    def attempt(self, key: str, now: float | None = None) -> int:
        """Count an attempt; 0 if allowed, else the seconds until one is (then not counted)."""
        now = time.monotonic() if now is None else now
        wait = self.wait_s(key, now)
        if wait:
            return wait
        self._seen.setdefault(key, collections.deque()).append(now)
        self._seen.move_to_end(key)
        return 0

    def _until(self, then: float, now: float) -> int:
        return max(1, math.ceil(then + self.window_s - now))

    def _forget_before(self, cutoff: float) -> None:
        while self._seen:
            key, times = next(iter(self._seen.items()))
            if times and times[-1] > cutoff:
                break
            del self._seen[key]
