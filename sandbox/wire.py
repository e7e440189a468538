"""Length-prefixed JSON frames: how processes of the sandbox talk.

Blocking helpers for the sandbox processes; the pool reads the same frames
with asyncio streams (`read_body_async`) and validates them with the
models in `protocol.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=True).encode()
    return HEADER.pack(len(body)) + body


def write_frame(fd: int, message: dict[str, Any]) -> None:
    view = memoryview(encode(message))
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int = 64 * 1024 * 1024) -> dict[str, Any] | None:
    """The next frame, or None at end of stream."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise ValueError(f"frame of {size} bytes is over the {max_bytes}-byte limit")
    body = _read_exactly(fd, size)
    return None if body is None else json.loads(body)


async def read_body_async(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """The next frame's body, unparsed (a model validates it), or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > max_bytes:
            raise ValueError(f"frame of {size} bytes is over the {max_bytes}-byte limit")
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
