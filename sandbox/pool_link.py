"""A supervisor's socket to the pool: its frames out without blocking, its one order in.

    pool ══socket══ PoolLink (in the template's loop) ── Supervisor ── run

Frames for the pool wait in an outbox while the socket is full: a pool
that reads slowly holds up only this spare. The order is reassembled
within its cap and validated before the supervisor sees it; anything else
from the pool, or its hanging up, ends the spare.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable

from sandbox.loop import Loop
from sandbox.messages import MAX_ORDER_BYTES, RunOrder
from sandbox.reassembly import FrameBuffer
from sandbox.wire import ProtocolError, parse_frame


class PoolLink:
    def __init__(self, loop: Loop, sock: socket.socket, on_order: Callable[[RunOrder], None],
                 on_hang_up: Callable[[], None]) -> None:
        self.loop, self.sock = loop, sock
        self.on_order, self.on_hang_up = on_order, on_hang_up
        self.awaiting_order = False  # only a ready spare takes one
        self.inbox = FrameBuffer(MAX_ORDER_BYTES)  # the order, as it arrives
        self.outbox = bytearray()  # frames for the pool not yet sent
        self.closing = False  # close once the outbox is empty
        sock.setblocking(False)
        loop.owned.add(sock.fileno())
        loop.watch(sock.fileno(), selectors.EVENT_READ, self._on_readable)

    def send(self, frame: bytes) -> None:
        self.outbox += frame
        self._flush()

    def close_when_sent(self) -> None:
        self.closing, self.awaiting_order = True, False
        if not self.outbox:
            self._close()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the pool hung up or gave the spare up: no one wants a result
            self.on_hang_up()
            return
        if not self.awaiting_order:
            return  # the pool says nothing else
        self.inbox.take(data)
        frame = self.inbox.frame()
        if self.inbox.too_large:
            self.on_hang_up()
        elif frame is not None:
            try:
                order = parse_frame(RunOrder, frame)
            except ProtocolError:
                self.on_hang_up()
                return
            self.awaiting_order = False
            self.on_order(order)

    def _flush(self) -> None:
        try:
            while self.outbox:
                del self.outbox[:self.sock.send(self.outbox)]
        except BlockingIOError:
            self.loop.watch(self.sock.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE,
                            self._on_ready)
            return
        except OSError:
            self.outbox.clear()
        if self.closing:
            self._close()
        else:
            self.loop.watch(self.sock.fileno(), selectors.EVENT_READ, self._on_readable)

    def _on_ready(self) -> None:
        if self.outbox:
            self._flush()
        else:
            self._on_readable()

    def _close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.close(self.sock.fileno())
            self.sock.detach()
