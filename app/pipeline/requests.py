"""What to run: the one place a `RunRequest` is built, from what the caller knows.

A step's run takes its lesson's device and time limit, the step's compared
names (each side's own expression) and its graph block; options the caller
gives (a timed repeat, an exercise's names, an API client's choices) win.
Pages, the API, `sidebyside check`, upload checks and precompute all build
here, so the same step asks the sandbox for the same thing whoever asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from app.packs.models import Lesson, Step
from sandbox.protocol import Device, Framework, RunRequest


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a caller may set beyond the step's own wishes; None: the step's (or the default)."""

    repeat: int = 1
    graph: bool = True  # the pages always show what a run built
    capture: Mapping[str, str] | None = None  # name -> expression; None: the step's compare
    draw: str | None = None
    timeout_s: float | None = None
    device: Device | None = None


DEFAULT_OPTIONS = RunOptions()
TIMING_REPEAT = 10  # "Time both": each side runs this many times in one sandbox


def build_request(side: Framework, code: str, *, lesson: Lesson | None = None,
                  step: Step | None = None, options: RunOptions = DEFAULT_OPTIONS) -> RunRequest:
    capture = options.capture
    if capture is None:
        capture = step.compare.exprs(side) if step is not None and step.compare else {}
    draw = options.draw
    if draw is None and step is not None and step.graph is not None:
        draw = getattr(step.graph, side)
    timeout_s = options.timeout_s if options.timeout_s is not None else (
        lesson.timeout_s if lesson is not None else None)
    device = options.device or (lesson.device if lesson is not None else "cpu")
    return RunRequest(framework=side, code=code, repeat=options.repeat, graph=options.graph,
                      draw=draw, capture=dict(capture), device=device, timeout_s=timeout_s)


def exercise_options(step: Step) -> RunOptions:
    """An exercise compares its own names, bare on its one side."""
    assert step.exercise is not None
    return RunOptions(capture={name: name for name in step.exercise.compare})


def original_code(step: Step, side: Framework) -> str:
    """What a side's editor starts with: the step's own example, exercise or not (the
    exercise has an editor of its own, which starts with its starter)."""
    return step.snippet(side).code
