"""Do two runs agree? Values compared as NumPy arrays, `allclose` style."""

from __future__ import annotations

import base64

import numpy as np
from pydantic import BaseModel, Field

from sandbox.protocol import CapturedArray, RunResult


class NameComparison(BaseModel):
    match: bool
    shapes: list[list[int] | None] = Field(default_factory=list)  # [left, right]
    dtypes: list[str | None] = Field(default_factory=list)
    max_abs_diff: float | None = None
    reason: str | None = None


class Comparison(BaseModel):
    match: bool
    names: dict[str, NameComparison] = Field(default_factory=dict)


def _array(captured: CapturedArray) -> np.ndarray:
    raw = base64.b64decode(captured.data_b64 or "")
    return np.frombuffer(raw, dtype=np.dtype(captured.dtype or "f4")).reshape(captured.shape or [])


def compare_arrays(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> NameComparison:
    shapes = [list(a.shape), list(b.shape)]
    dtypes = [str(a.dtype), str(b.dtype)]
    if a.shape != b.shape:
        return NameComparison(match=False, shapes=shapes, dtypes=dtypes,
                              reason=f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dtype == bool or b.dtype == bool:
        a, b = a.astype(np.int8), b.astype(np.int8)
    left, right = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(left - right))) if a.size else 0.0
    match = bool(np.allclose(left, right, rtol=rtol, atol=atol, equal_nan=True))
    return NameComparison(match=match, shapes=shapes, dtypes=dtypes,
                          max_abs_diff=diff if np.isfinite(diff) else None,
                          reason=None if match else f"values differ (max |diff| = {diff:.3g})")


def compare_results(a: RunResult, b: RunResult, names: list[str], rtol: float = 1e-5,
                    atol: float = 1e-6) -> Comparison:
    """Compare the captured `names` of two runs (both must have asked to capture them)."""
    results: dict[str, NameComparison] = {}
    for name in names:
        left, right = a.captured.get(name), b.captured.get(name)
        missing = [why for why in (
            _missing(a, left, "left"), _missing(b, right, "right")) if why]
        if missing or left is None or right is None:
            results[name] = NameComparison(match=False, reason="; ".join(missing))
            continue
        try:
            results[name] = compare_arrays(_array(left), _array(right), rtol, atol)
        except (ValueError, TypeError) as exc:
            results[name] = NameComparison(match=False, reason=f"not comparable: {exc}")
    return Comparison(match=bool(results) and all(r.match for r in results.values()),
                      names=results)


def _missing(run: RunResult, captured: CapturedArray | None, side: str) -> str | None:
    label = run.framework or side
    if run.status != "ok":
        return f"the {label} run did not finish ({run.status.value})"
    if captured is None:
        return f"not captured on the {label} side"
    if captured.missing:
        return f"{label}: {captured.missing}"
    return None
