"""What the templates show, computed in Python where it needs arithmetic."""

from __future__ import annotations

import base64
import dataclasses
import math
import re

from app.bytecache import ByteLRU
from sandbox.protocol import Framework, RunResult, Timings

LABELS: dict[str, str] = {"tensorflow": "TensorFlow", "pytorch": "PyTorch"}

def failure(result: RunResult, *, line: bool = True) -> str | None:
    """What kept a side from running through, in a few words ("raised KeyError at
    line 3"); None when it ran."""
    error = result.error
    kind = error.type if error else None
    where = f" at line {error.line}" if line and error and error.line else ""
    return {
        "ok": None,
        "error": f"raised {kind or 'an error'}{where}",
        "timeout": "ran past its time limit",
        "memory": "ran out of memory",
        "killed": f"was stopped ({kind or 'killed'})",
        "output_limit": "printed more than a run may",
        "rejected": "was not run",
    }.get(result.status.value, "did not finish")


STATUS_TEXT = {
    "ok": "ran",
    "error": "raised an error",
    "timeout": "timed out",
    "memory": "ran out of memory",
    "killed": "was stopped",
    "output_limit": "printed too much",
    "rejected": "did not run",
}


# A page shows the same graphs on every view; a run may draw a large one.
SVG_URIS_BUDGET_BYTES = 32 * 2**20
_svg_uris: ByteLRU[str, str] = ByteLRU(SVG_URIS_BUDGET_BYTES)


def svg_data_uri(svg: str) -> str:
    """A graph as an <img> source: an image cannot run script, whatever it holds."""
    uri = _svg_uris.get(svg)
    if uri is None:
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        _svg_uris.put(svg, uri, len(svg) + len(uri))  # the cache holds the key too
    return uri


@dataclasses.dataclass(frozen=True)
class Bar:
    y: float
    label: str
    side: str
    device: str  # in full, for the tooltip and screen readers
    device_short: str  # what fits left of the bars
    value_ms: float
    width: float
    lo: float | None  # whisker ends (p25, p75) in chart x units
    hi: float | None
    first: float | None  # x of the cold first run, clamped to the chart
    first_ms: float | None
    first_off_chart: bool
    text: str
    missing: bool = False  # the side didn't finish: a row with the reason, no bar


@dataclasses.dataclass(frozen=True)
class TimingChart:
    width: int
    height: int
    left: int
    plot: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]


_W, _LEFT, _ROW = 640, 150, 40
_TEXT_ROOM = 190  # right of the longest bar: "73 µs · n=10 · first 63 ms ▸"
_DEVICE_CHARS = 22  # 11 px text in the 140 px left of the bars


def _short_device(name: str) -> str:
    """"Intel(R) Xeon(R) Processor" as "Intel Xeon Processor": fits the label column."""
    short = " ".join(re.sub(r"\((R|TM|tm)\)", "", name).split())
    return short if len(short) <= _DEVICE_CHARS else short[:_DEVICE_CHARS - 1].rstrip() + "…"


def timing_chart(rows: list[tuple[str, Framework, str, Timings]],
                 missing: list[tuple[str, Framework, str]] | None = None) -> TimingChart:
    """Bars of the steady-state time (median, or the single run), p25-p75 whiskers.

    `missing` are the sides that have no time (label, side, why): each gets a
    row that says so, so the chart never silently shows one side alone.
    """
    plot = _W - _LEFT - _TEXT_ROOM
    top = max((max(t.p75_ms or 0.0, t.median_ms or 0.0, t.wall_ms) for *_, t in rows),
              default=0.0) or 1.0
    top = _nice(top * 1.1)
    scale = plot / top
    bars = []
    for i, (label, side, device, t) in enumerate(rows):
        value = t.median_ms if t.median_ms is not None else t.wall_ms
        first = t.first_ms
        bars.append(Bar(
            y=12 + i * _ROW, label=label, side=side, device=device or "cpu",
            device_short=_short_device(device or "cpu"), value_ms=value,
            width=max(1.0, value * scale),
            lo=t.p25_ms * scale if t.p25_ms is not None else None,
            hi=t.p75_ms * scale if t.p75_ms is not None else None,
            first=min(first, top) * scale if first is not None else None,
            first_ms=first, first_off_chart=first is not None and first > top,
            text=_ms(value) + (f" · n={t.runs}" if t.runs > 1 else ""),
        ))
    for label, side, why in missing or []:
        bars.append(Bar(y=12 + len(bars) * _ROW, label=label, side=side, device="",
                        device_short="", value_ms=0.0, width=0.0, lo=None, hi=None, first=None,
                        first_ms=None, first_off_chart=False, text=why, missing=True))
    mantissa = top / 10 ** math.floor(math.log10(top))
    parts = 5 if round(mantissa, 3) in (2.5, 5.0) else 4  # round tick labels
    ticks = [(top * k / parts * scale, _tick(top * k / parts)) for k in range(parts + 1)]
    return TimingChart(_W, 12 + len(bars) * _ROW + 22, _LEFT, plot, bars, ticks)


# A step whose first call compiles or traces: its one-run time is mostly that.
COMPILES = re.compile(r"torch\.compile|torch\.jit|torch\.export|tf\.function|jit_compile")


def ms(value: float) -> str:
    """A duration as people read it: 312 ms, 4.25 ms, 29 µs."""
    return _ms(value)


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 1:
        return f"{value:.2f} ms"
    return f"{value * 1000:.0f} µs"


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.4g} ms" if value >= 1 else f"{value * 1000:.4g} µs"


def _nice(x: float) -> float:
    """The next 1, 2, 2.5 or 5 times a power of ten at or above x."""
    exp = math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= x:
            return float(m * 10**exp)
    return x
