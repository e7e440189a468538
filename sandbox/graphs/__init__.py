"""Drawings of what a snippet built: autograd graphs, traced tf.functions, model structure.

The run calls `install_tracking()` before the snippet and `draw(...)` after
it, in the same process. Drawing never raises: the run's own result matters
more than its picture, so a failure becomes a short note or nothing.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from sandbox.graphs import tracking
from sandbox.graphs.render import note_svg, render
from sandbox.graphs.targets import Job, plan_tf, plan_torch
from sandbox.protocol import MAX_SHORT_CHARS, MAX_SVG_CHARS, Graph

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^\w+(Error|Exception): ")


def install_tracking() -> None:
    """Start recording tf.function calls (which function, which arguments, in order)."""
    with contextlib.suppress(Exception):  # a TensorFlow whose tf.function cannot be wrapped
        tracking.install()


def draw(
    namespace: dict[str, Any],
    framework: str,
    target: str | None,
    *,
    max_nodes: int = 300,
    render_timeout_s: float = 3.0,
) -> list[Graph]:
    """Graphs: kind, title, svg, nodes, truncated."""
    try:
        jobs = (plan_torch if framework == "pytorch" else plan_tf)(namespace, target)
    except Exception:  # a namespace too odd to search: no drawing at all
        return []
    return [_build(job, max_nodes, render_timeout_s) for job in jobs]


def _build(job: Job, max_nodes: int, timeout_s: float) -> Graph:
    kind, title, make = job
    if isinstance(make, str):
        return _note(kind, title, make)
    try:
        drawn = render(make(), max_nodes=max_nodes, timeout_s=timeout_s)
    except Exception as exc:  # a failed drawing must not cost the run its result
        return _note(kind, title, f"could not draw this graph: {_reason(exc)}")
    if len(drawn.svg) > MAX_SVG_CHARS:
        return _note(kind, title, "this graph's drawing is too large to show")
    return Graph(kind=kind, title=title[:MAX_SHORT_CHARS], svg=drawn.svg, nodes=drawn.nodes,
                 truncated=drawn.truncated)


def _reason(exc: Exception) -> str:
    # Errors from traced code open with a traceback; the error line (and Keras's
    # explanation under it) follows the last "SomethingError:".
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    marks = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    if marks:
        lines = lines[marks[-1] : marks[-1] + 2]
    else:
        lines = [f"{type(exc).__name__}: {lines[0] if lines else ''}"]
    return " ".join(lines)[:200]


def _note(kind: str, title: str, text: str) -> Graph:
    return Graph(kind=kind, title=title[:MAX_SHORT_CHARS], svg=note_svg(text), nodes=0)
