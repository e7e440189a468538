"""Server-sent event streams of a class, for API clients, the dashboard and learners' pages.

Each stream first sends the whole current state, then what changes, so a
page that reconnects (after a network blip or a server restart) is whole
again at once. A comment line goes out when nothing else has for a while,
so proxies keep the connection and a dead client is noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.classes.bus import ClassEvent, EventBus
from app.classes.streamslots import Slot, StreamSlots, TooManyStreams

KEEPALIVE_S = 15.0
SETTLE_S = 0.25  # the dashboard re-renders at most this often under a burst
RETRY_MS = 2000  # how soon a browser reconnects after the stream drops
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

Frames = list[tuple[str, str]]  # (event name, data)


class HeldStream(StreamingResponse):
    """An event stream that gives its slot back when the response ends, however it ends:
    finished, the client gone (Starlette stops the body then), or the server stopping."""

    def __init__(self, body: AsyncIterator[str], slot: Slot) -> None:
        super().__init__(body, media_type="text/event-stream", headers=HEADERS)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def respond(slots: StreamSlots, address: str, token: str | None,
            body: AsyncIterator[str]) -> Response:
    """The stream in a slot of its own, or 429 when a cap is reached.

    The refusal closes its connection, so a refused client holds no
    descriptor; a page's EventSource tries again by itself, backing off.
    """
    try:
        slot = slots.take(address, token)
    except TooManyStreams as exc:
        return JSONResponse({"detail": exc.message, "retry_after_s": exc.retry_after_s}, 429,
                            headers={"Retry-After": str(exc.retry_after_s),
                                     "Connection": "close", **HEADERS})
    return HeldStream(body, slot)


def encode(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


async def follow(bus: EventBus, code: str, everything: Callable[[], Awaitable[Frames]],
                 on_event: Callable[[ClassEvent], Awaitable[Frames]], *,
                 wants: Callable[[ClassEvent], bool] | None = None,
                 ends: Callable[[ClassEvent], bool] | None = None, settle_s: float = 0.0,
                 refresh_s: float | None = None) -> AsyncIterator[str]:
    """The stream: `everything` first and on overflow, `on_event` per event.

    Only the events `wants` accepts are answered, and the stream ends after
    answering one that `ends` accepts. With `settle_s`, events arriving
    together are answered once, by `everything`; with `refresh_s`,
    `everything` is sent again after that long without events (the
    dashboard's idle times move on their own).
    """
    async with bus.subscribe(code) as subscription:
        yield f"retry: {RETRY_MS}\n\n"
        for name, data in await everything():
            yield encode(name, data)
        quiet_s = 0.0
        while True:
            wait_s = min(KEEPALIVE_S, refresh_s or KEEPALIVE_S)
            event = await subscription.next(wait_s)
            if event is None:
                return  # the server is stopping
            if event == "idle":
                quiet_s += wait_s
                if refresh_s is not None and quiet_s >= refresh_s:
                    quiet_s = 0.0
                    for name, data in await everything():
                        yield encode(name, data)
                else:
                    yield ": keepalive\n\n"
                continue
            quiet_s = 0.0
            if wants is not None and event.kind != "overflow" and not wants(event):
                continue
            if settle_s or event.kind == "overflow":
                closed = await _drain(subscription.queue, settle_s)
                for name, data in await everything():
                    yield encode(name, data)
                if closed:
                    return
                continue
            for name, data in await on_event(event):
                yield encode(name, data)
            if ends is not None and ends(event):
                return


async def _drain(queue: asyncio.Queue[ClassEvent | None], settle_s: float) -> bool:
    """Wait `settle_s`, then drop what queued meanwhile; True if the bus closed."""
    if settle_s:
        await asyncio.sleep(settle_s)
    closed = False
    while not queue.empty():
        closed = closed or queue.get_nowait() is None
    return closed
