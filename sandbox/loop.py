"""The template's one loop: every descriptor it watches, and its timers.

    template (one thread)
      └── Loop: one selector (the control socket, each supervisor's pipes,
                socket and pidfd) and one heap of timers

Every descriptor is non-blocking, so a run that stops reading or writing
stalls nothing but itself. The loop also keeps the set of descriptors the
template owns (`owned`): a run forked from it closes them all first.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import time
import traceback
from collections.abc import Callable

Callback = Callable[[], None]


class Timer:
    def __init__(self, callback: Callback) -> None:
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        self.callback = None


class Loop:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self.owned: set[int] = {self.selector.fileno()}

    def watch(self, fd: int, events: int, callback: Callback) -> None:
        try:
            self.selector.modify(fd, events, callback)
        except KeyError:
            self.selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    def close(self, fd: int) -> None:
        self.unwatch(fd)
        self.owned.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def later(self, delay_s: float, callback: Callback) -> Timer:
        timer = Timer(callback)
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._order), timer))
        return timer

    def run_forever(self) -> None:
        while True:
            timeout = None
            while self._timers and self._timers[0][2].callback is None:
                heapq.heappop(self._timers)
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, _ in self.selector.select(timeout):
                # An earlier callback in this batch may have closed this fd, and
                # another spare may have its number now: only the current watcher runs.
                current = self.selector.get_map().get(key.fd)
                if current is not None and current.data is key.data:
                    self._call(key.data)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, timer = heapq.heappop(self._timers)
                if timer.callback is not None:
                    callback, timer.callback = timer.callback, None
                    self._call(callback)

    @staticmethod
    def _call(callback: Callback) -> None:
        # One supervisor's bug must not take the others' runs down with the
        # template; the pool hangs up on a spare that stops answering.
        try:
            callback()
        except Exception:
            traceback.print_exc()
