"""Frames on the wire: length-prefixed JSON out, validated models in.

Every process of the sandbox speaks these: the run and the supervisor with
blocking helpers, the pool with asyncio streams (`read_body_async`). A
frame's body is read as bytes and becomes a model only through
`parse_frame`, whose one failure is a `ProtocolError`.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import TypeVar

from pydantic import BaseModel, ValidationError

HEADER = struct.Struct(">I")
M = TypeVar("M", bound=BaseModel)


class ProtocolError(ValueError):
    """A frame that is not what the protocol allows at this point."""


def parse_frame(model: type[M], data: bytes | dict[str, object]) -> M:
    """Validate one frame; anything else is a ProtocolError."""
    try:
        if isinstance(data, bytes | bytearray):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProtocolError(f"malformed {model.__name__}: {where}: {first['msg']}") from None


def encode(message: BaseModel) -> bytes:
    body = message.model_dump_json().encode()
    return HEADER.pack(len(body)) + body


def write_frame(fd: int, message: BaseModel) -> None:
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


def read_body(fd: int, max_bytes: int = 64 * 1024 * 1024) -> bytes | None:
    """The next frame's body, unparsed (a model validates it), or None at end of stream."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise ValueError(f"frame of {size} bytes is over the {max_bytes}-byte limit")
    return _read_exactly(fd, size)


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
