"""A run's pipes put back together, within their caps: two streams and one frame.

The supervisor reads whatever chunks the pipes give and hands them here.
Nothing is kept beyond a cap: `output_bytes` of each stream (then the run
ends, `output_limit`), one frame of at most its limit (the run's result, or
the pool's order). A frame is checked by its declared size before a byte
of it is parsed; its shape is the models' to check (`wire.parse_frame`).
"""

from __future__ import annotations

import enum

from sandbox.limits import Limits
from sandbox.wire import HEADER

CUT_MARKER = "\n[… output cut: more than {kib} KiB on this stream]\n"


class Pipe(enum.StrEnum):
    stdout = "stdout"
    stderr = "stderr"
    result = "result"  # the run's frames: SpareReady, then RunFinished


class FrameBuffer:
    """Chunks in, one length-prefixed frame out; nothing kept past `limit` bytes of body."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.too_large = False  # more was sent, or declared, than the limit allows

    def take(self, chunk: bytes) -> None:
        room = self.limit + HEADER.size - len(self.data)
        self.data += chunk[:max(room, 0)]
        if len(chunk) > room:
            self.too_large = True

    def frame(self) -> bytes | None:
        """The frame's body once it is whole (None until then, or when it is too large)."""
        if len(self.data) < HEADER.size:
            return None
        (size,) = HEADER.unpack(self.data[:HEADER.size])
        if size > self.limit:
            self.too_large = True
            return None
        end = HEADER.size + size
        return bytes(self.data[HEADER.size:end]) if len(self.data) >= end else None


class RunStreams:
    """What one spare (then run) wrote: stdout and stderr up to their cap, and its frame."""

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.output_bytes
        self.streams = {Pipe.stdout: bytearray(), Pipe.stderr: bytearray()}
        self.result = FrameBuffer(limits.result_bytes)
        self.over: Pipe | None = None  # the last pipe that went past its cap

    def take(self, pipe: Pipe, chunk: bytes) -> None:
        if pipe is Pipe.result:
            self.result.take(chunk)
            if self.result.too_large:
                self.over = Pipe.result
            return
        buf = self.streams[pipe]
        room = self.limit - len(buf)
        buf += chunk[:max(room, 0)]
        if len(chunk) > room:
            self.over = pipe

    def text(self, pipe: Pipe) -> str:
        text = self.streams[pipe].decode("utf-8", "backslashreplace")
        if self.over is pipe:
            text += CUT_MARKER.format(kib=self.limit // 1024)
        return text

    def frame(self) -> bytes | None:
        frame = self.result.frame()
        if self.result.too_large:
            self.over = Pipe.result
        return frame
