"""A mapping bounded by the bytes of what it holds, least recently used out first.

Runs are the learners' to shape: one can print 256 KiB or draw a large graph,
so a cache bounded by its number of entries is bounded in nothing that
matters. The caller says what an entry weighs (it knows what is large in
it); an entry heavier than the whole budget is not kept at all.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.nbytes = 0
        self._entries: collections.OrderedDict[K, tuple[V, int]] = collections.OrderedDict()
        # Templates (svg_data_uri) may render on more than one thread.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V, nbytes: int) -> None:
        with self._lock:
            self._pop(key)
            if nbytes > self.budget_bytes:
                return
            self._entries[key] = (value, nbytes)
            self.nbytes += nbytes
            while self.nbytes > self.budget_bytes:
                self._pop(next(iter(self._entries)))

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._pop(key)

    def items(self) -> list[tuple[K, V]]:
        """A snapshot, least recently used first."""
        with self._lock:
            return [(k, v) for k, (v, _) in self._entries.items()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def _pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.nbytes -= entry[1]
        return entry[0]
