"""Do two runs agree? Values compared as NumPy arrays: numbers `allclose` style,
integers, booleans and strings exactly, dtypes too when the tolerances are zero."""

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


# A run chooses what it captures: comparing is bounded so no pair can hold a thread for
# long. Lessons compare small values; past this a name is a mismatch that says why.
MAX_COMPARED_ELEMENTS = 1_000_000
TEXT_KINDS = "US"  # NumPy's str and bytes kinds: device strings, dtype names, labels
EXACT_KINDS = "biu"  # bool, signed and unsigned integers: counts, indices, orders
PREVIEW_CHARS = 120


def _show(array: np.ndarray) -> str:
    # a captured scalar arrives as a one-element array: show the element
    text = repr(array.reshape(-1)[0].item() if array.size == 1 else array.tolist())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _dtype_name(array: np.ndarray) -> str:
    return "str" if array.dtype.kind in TEXT_KINDS else str(array.dtype)


def compare_arrays(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> NameComparison:
    """Do two captured values agree?

    Numbers match within `allclose(rtol, atol)`; integers and booleans on both
    sides match only when equal; strings (and arrays of them) only when equal.
    `rtol == atol == 0` asks for exactness: the same dtype as well (int32 is
    not int64, float32 is not float64; strings of any length are one dtype).
    """
    shapes = [list(a.shape), list(b.shape)]
    dtypes = [str(a.dtype), str(b.dtype)]

    def differ(reason: str, diff: float | None = None) -> NameComparison:
        return NameComparison(match=False, shapes=shapes, dtypes=dtypes, max_abs_diff=diff,
                              reason=reason)

    if a.shape != b.shape:
        return differ(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    exact = rtol == 0 and atol == 0
    if exact and _dtype_name(a) != _dtype_name(b):
        return differ(f"dtypes differ: {_dtype_name(a)} vs {_dtype_name(b)}")
    text = [x.dtype.kind in TEXT_KINDS for x in (a, b)]
    if any(text):
        if not all(text):
            return differ(f"a string against a number: {_show(a)} vs {_show(b)}")
        if np.array_equal(a.astype(str), b.astype(str)):
            return NameComparison(match=True, shapes=shapes, dtypes=dtypes)
        return differ(f"values differ: {_show(a)} vs {_show(b)}")
    left, right = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf is nan: shown as no figure below
        diff = float(np.max(np.abs(left - right))) if a.size else 0.0
    shown = diff if np.isfinite(diff) else None
    if exact or (a.dtype.kind in EXACT_KINDS and b.dtype.kind in EXACT_KINDS):
        # integers are compared as integers (float64 would round above 2**53)
        same = (np.array_equal(a, b) if a.dtype.kind in EXACT_KINDS and b.dtype.kind in EXACT_KINDS
                else np.array_equal(left, right, equal_nan=True))
        if same:
            return NameComparison(match=True, shapes=shapes, dtypes=dtypes, max_abs_diff=shown)
        if a.size <= 16:
            return differ(f"values differ: {_show(a)} vs {_show(b)}", shown)
        return differ(f"values differ (max |diff| = {diff:.3g})", shown)
    match = bool(np.allclose(left, right, rtol=rtol, atol=atol, equal_nan=True))
    return NameComparison(match=match, shapes=shapes, dtypes=dtypes, max_abs_diff=shown,
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
            left_array, right_array = _array(left), _array(right)
            size = max(left_array.size, right_array.size)
            if size > MAX_COMPARED_ELEMENTS:
                results[name] = NameComparison(
                    match=False, shapes=[list(left_array.shape), list(right_array.shape)],
                    reason=f"too large to compare: {size:,} elements "
                           f"(at most {MAX_COMPARED_ELEMENTS:,})")
                continue
            results[name] = compare_arrays(left_array, right_array, rtol, atol)
        except Exception as exc:  # a forged array (bad dtype, bad bytes): the run's fault
            results[name] = NameComparison(
                match=False, reason=f"not comparable: {type(exc).__name__}: {exc}"[:300])
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
