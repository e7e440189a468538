"""Caps on held event streams: per client address, per token, and in all.

An open stream holds a socket, one file descriptor, for as long as its
client likes. Uncapped, one client could hold streams until the process
runs out of descriptors and stops accepting anything, /api/health
included. So every stream takes a slot first: at most `per_address` from
one address (a class behind one NAT shares one), `per_token` for one
instructor or learner (tabs, a projector), and `total` in all: a quarter of
the process's descriptor limit as it was at start, which leaves the rest
for pages, the database, the pool and the refusals themselves.
"""

from __future__ import annotations

import collections
import dataclasses
import resource

from app.classes.errors import ClassRefused

RETRY_AFTER_S = 10
SHARE_OF_DESCRIPTORS = 4  # streams get a quarter of them
UNLIMITED_TOTAL = 16_384  # when the descriptor limit is infinite


class TooManyStreams(ClassRefused):
    status_code = 429


def descriptor_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED_TOTAL * SHARE_OF_DESCRIPTORS if soft == resource.RLIM_INFINITY else soft


@dataclasses.dataclass(eq=False)
class Slot:
    """One held stream; `release` is safe to call more than once."""

    slots: StreamSlots
    address: str
    token: str | None
    held: bool = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots._give_back(self)


class StreamSlots:
    def __init__(self, *, per_address: int, per_token: int, total: int) -> None:
        self.per_address, self.per_token, self.total = per_address, per_token, total
        self.held = 0
        self._addresses: collections.Counter[str] = collections.Counter()
        self._tokens: collections.Counter[str] = collections.Counter()

    @classmethod
    def for_this_process(cls, *, per_address: int, per_token: int) -> StreamSlots:
        total = max(1, descriptor_limit() // SHARE_OF_DESCRIPTORS)
        return cls(per_address=per_address, per_token=per_token, total=total)

    def take(self, address: str, token: str | None) -> Slot:
        """A slot for one stream, or TooManyStreams saying which cap it hit."""
        if self.held >= self.total:
            raise TooManyStreams(f"The server holds as many live streams as it may "
                                 f"({self.total}); this page will reconnect by itself.",
                                 RETRY_AFTER_S)
        if self._addresses[address] >= self.per_address:
            raise TooManyStreams(f"Too many live streams from this address "
                                 f"({self.per_address}); close a tab or two.", RETRY_AFTER_S)
        if token is not None and self._tokens[token] >= self.per_token:
            raise TooManyStreams(f"Too many live streams for this sign-in "
                                 f"({self.per_token}); close a tab or two.", RETRY_AFTER_S)
        self.held += 1
        self._addresses[address] += 1
        if token is not None:
            self._tokens[token] += 1
        return Slot(self, address, token)

    def _give_back(self, slot: Slot) -> None:
        self.held -= 1
        _decrement(self._addresses, slot.address)
        if slot.token is not None:
            _decrement(self._tokens, slot.token)


def _decrement(counts: collections.Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]  # the counters hold only what is open now
