"""Run one snippet in this process and describe what happened.

Called in the run process, after isolation is in place. Returns a
`protocol.RunResult` (the supervisor adds stdout/stderr), its text cut to
the protocol's caps here, so an odd exception or value is cut, not refused.
"""

from __future__ import annotations

import ast
import linecache
import statistics
import sys
import time
import traceback
import types
from typing import Any

from pydantic import ValidationError

from sandbox import gpu, values
from sandbox.protocol import (
    MAX_MESSAGE_CHARS,
    MAX_SHORT_CHARS,
    MAX_TRACEBACK_CHARS,
    TIMED_MARKER,
    ErrorInfo,
    RunResult,
    RunStatus,
    Timings,
)

SNIPPET_FILE = "<snippet>"
MEMORY_ERROR_HINTS = ("can't allocate memory", "DefaultCPUAllocator", "out of memory", "OOM")


def _compile(source: str, first_line: int) -> types.CodeType:
    # Line numbers stay those of the whole snippet, even for the timed part.
    padded = "\n" * (first_line - 1) + source
    return compile(padded, SNIPPET_FILE, "exec", dont_inherit=True)


def _split(code: str) -> tuple[str, str, int]:
    """(setup, timed, first line of timed) around the `# %% timed` marker."""
    lines = code.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() == TIMED_MARKER:
            return "".join(lines[:i]), "".join(lines[i + 1:]), i + 2
    return "", code, 1


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)]


def _status_for(exc: BaseException) -> RunStatus:
    if isinstance(exc, MemoryError) or type(exc).__name__ in ("OutOfMemoryError",
                                                              "ResourceExhaustedError"):
        return RunStatus.memory
    if isinstance(exc, RuntimeError) and any(h in str(exc) for h in MEMORY_ERROR_HINTS):
        return RunStatus.memory
    return RunStatus.error


def error_info(exc: BaseException) -> ErrorInfo:
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == SNIPPET_FILE:
        line = exc.lineno
        frames = f'  line {exc.lineno}\n    {(exc.text or "").strip()}\n'
    else:
        snippet_frames = [f for f in traceback.extract_tb(exc.__traceback__)
                          if f.filename == SNIPPET_FILE]
        if snippet_frames:
            line = snippet_frames[-1].lineno
        frames = "".join(f"  line {f.lineno}, in {f.name}\n    {(f.line or '').strip()}\n"
                         for f in snippet_frames)
    message = str(exc) if not isinstance(exc, SyntaxError) else (exc.msg or str(exc))
    message = message[:MAX_MESSAGE_CHARS]
    name = type(exc).__name__[:MAX_SHORT_CHARS]
    traceback_text = f"Traceback (snippet frames):\n{frames}{name}: {message}"
    if len(traceback_text) > MAX_TRACEBACK_CHARS:  # a deep recursion: keep its last frames
        traceback_text = "…" + traceback_text[-(MAX_TRACEBACK_CHARS - 1):]
    return ErrorInfo(type=name, message=message, line=line, traceback=traceback_text)


def _force(namespace: dict[str, Any], names: list[str]) -> None:
    """Make sure queued device work is done before the clock stops."""
    gpu.sync()
    for name in names:
        value = namespace.get(name)
        if type(value).__name__ == "EagerTensor":
            value.numpy()  # type: ignore[union-attr]


def _stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else ordered * 3
    return {"median_ms": statistics.median(ordered), "p25_ms": q[0], "p75_ms": q[2]}


def run_snippet(code: str, repeat: int,
                capture: dict[str, str]) -> tuple[RunResult, dict[str, Any]]:
    """Execute `code`; returns its result and the snippet's namespace."""
    linecache.cache[SNIPPET_FILE] = (len(code), None, code.splitlines(True), SNIPPET_FILE)
    # No __file__: AutoGraph would "refresh" the linecache entry from disk for a
    # module whose __file__ matches, and so lose the source it needs.
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module  # classes defined here pickle as __main__.X
    namespace = module.__dict__
    preexisting = set(namespace)
    setup, timed, timed_line = _split(code)
    timings: dict[str, Any] = {"runs": repeat}
    status, error = RunStatus.ok, None
    try:
        if setup:
            t0 = time.perf_counter()
            exec(_compile(setup, 1), namespace)
            timings["setup_ms"] = (time.perf_counter() - t0) * 1000
        compiled = _compile(timed, timed_line)
        forced = _assigned_names(timed)
        samples = []
        cpu0 = time.process_time()
        for _ in range(repeat):
            t0 = time.perf_counter()
            exec(compiled, namespace)
            _force(namespace, forced)
            samples.append((time.perf_counter() - t0) * 1000)
        timings["cpu_ms"] = (time.process_time() - cpu0) * 1000 / repeat
        timings["wall_ms"] = samples[0] if repeat == 1 else statistics.median(samples[1:])
        if repeat > 1:
            timings["first_ms"] = samples[0]
            timings.update(_stats(samples[1:]))
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status, error = RunStatus.error, error_info(exc)
    except BaseException as exc:  # the snippet's own failure is a result, not a crash
        status, error = _status_for(exc), error_info(exc)
    measured = Timings(**timings) if "wall_ms" in timings else None
    described, not_shown = values.describe_namespace(namespace, preexisting)
    captured = values.capture(namespace, capture) if capture else {}
    try:
        result = RunResult(status=status, error=error, timings=measured, values=described,
                           values_not_shown=not_shown, captured=captured)
    except ValidationError:
        # Past a cap (a capture name too long): sent as it is, for the
        # supervisor to refuse, as it refuses anything a run sends. Not the
        # usual road: model_construct costs a fresh spare ≈ 4 ms.
        result = RunResult.model_construct(status=status, error=error, timings=measured,
                                           values=described, values_not_shown=not_shown,
                                           captured=captured)
    return result, namespace
