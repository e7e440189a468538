"""The in-process event bus between the class service and the SSE streams.

The service publishes what happened in a class; every open stream of that
class (instructors' dashboards, learners' pages, API clients) has its own
bounded queue. A stream that falls behind loses the oldest events and is
told so (`overflow`), and re-reads the state from the database, which is
where the truth is: the bus only says "look again". Behind the same two
calls a Redis pub/sub could carry events between several web servers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, Field

EventKind = Literal["joined", "moved", "run", "removed", "follow", "message", "pause", "end",
                    "overflow"]
# What a learner's page hears: the class's own state, never another learner.
CLASS_WIDE: frozenset[EventKind] = frozenset({"follow", "message", "pause", "end", "overflow"})
QUEUE_EVENTS = 512


class ClassEvent(BaseModel):
    kind: EventKind
    at: float = Field(default_factory=time.time)
    learner: str | None = None  # the learner's public id
    name: str | None = None
    lesson: str | None = None
    step: str | None = None
    status: str | None = None
    error: str | None = None
    text: str | None = None  # a message
    paused: bool | None = None


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ClassEvent | None] = asyncio.Queue(QUEUE_EVENTS)

    def put(self, event: ClassEvent | None) -> None:
        if event is None:  # the end of the stream is never dropped
            while not self.queue.empty():
                self.queue.get_nowait()
        elif self.queue.full():
            self.queue.get_nowait()
            self.queue.put_nowait(ClassEvent(kind="overflow"))
            return  # this event is lost too; overflow tells the reader to re-read
        self.queue.put_nowait(event)

    async def next(self, wait_s: float) -> ClassEvent | Literal["idle"] | None:
        """The next event; "idle" after `wait_s` without one; None when the bus closed."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return "idle"


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = collections.defaultdict(set)
        self.closed = False

    def publish(self, code: str, event: ClassEvent) -> None:
        for subscription in self._subscribers.get(code, ()):
            subscription.put(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, code: str) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        if self.closed:
            subscription.put(None)
        self._subscribers[code].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[code].discard(subscription)
            if not self._subscribers[code]:
                del self._subscribers[code]

    def close(self) -> None:
        """End every stream: the server is stopping, and pages will reconnect."""
        self.closed = True
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.put(None)
