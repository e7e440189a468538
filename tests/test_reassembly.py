"""A run's pipes put back together (sandbox/reassembly.py): frames and streams within caps."""

from __future__ import annotations

from sandbox import wire
from sandbox.limits import Limits
from sandbox.messages import SpareReady
from sandbox.reassembly import CUT_MARKER, FrameBuffer, Pipe, RunStreams

READY = SpareReady(framework="pytorch", device="CPU", versions={"torch": "2"}, threads={})


def test_a_frame_is_whole_only_once_its_last_byte_arrives() -> None:
    frame = wire.encode(READY)
    buffer = FrameBuffer(limit=1024)
    for i in range(len(frame) - 1):  # byte by byte, as a slow pipe gives it
        buffer.take(frame[i:i + 1])
        assert buffer.frame() is None
    buffer.take(frame[-1:])
    assert wire.parse_frame(SpareReady, buffer.frame() or b"") == READY
    assert not buffer.too_large


def test_a_frame_declared_over_its_cap_is_refused_before_it_arrives() -> None:
    buffer = FrameBuffer(limit=100)
    buffer.take(wire.HEADER.pack(101))
    assert buffer.frame() is None and buffer.too_large


def test_nothing_is_kept_past_the_cap_however_much_is_sent() -> None:
    buffer = FrameBuffer(limit=100)
    buffer.take(wire.HEADER.pack(100) + b"x" * 10_000)
    assert len(buffer.data) == wire.HEADER.size + 100 and buffer.too_large


def test_each_stream_keeps_its_cap_and_says_where_it_was_cut() -> None:
    streams = RunStreams(Limits(output_bytes=2048))
    streams.take(Pipe.stdout, b"a" * 1000)
    assert streams.over is None
    streams.take(Pipe.stdout, b"b" * 2000)
    assert streams.over is Pipe.stdout
    text = streams.text(Pipe.stdout)
    assert text == "a" * 1000 + "b" * 1048 + CUT_MARKER.format(kib=2)
    assert streams.text(Pipe.stderr) == ""  # the other stream is untouched


def test_the_last_pipe_to_go_over_is_the_one_named() -> None:
    streams = RunStreams(Limits(output_bytes=10, result_bytes=10))
    streams.take(Pipe.stdout, b"x" * 11)
    streams.take(Pipe.result, wire.HEADER.pack(11))
    assert streams.frame() is None and streams.over is Pipe.result


def test_undecodable_output_is_shown_escaped_not_refused() -> None:
    streams = RunStreams(Limits())
    streams.take(Pipe.stderr, b"caf\xc3\xa9 \xff")
    assert streams.text(Pipe.stderr) == "café \\xff"


def test_the_result_frame_comes_through_the_result_pipe() -> None:
    streams = RunStreams(Limits())
    streams.take(Pipe.result, wire.encode(READY))
    assert streams.frame() is not None and streams.over is None
