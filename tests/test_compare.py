"""app.compare: what counts as two runs agreeing, value by value."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from app.compare import compare_arrays, compare_results
from sandbox.protocol import CapturedArray, RunResult, RunStatus


def captured(value: object) -> CapturedArray:
    """A value packed the way the sandbox packs it (sandbox.values.capture)."""
    array = np.ascontiguousarray(np.asarray(value))
    return CapturedArray(shape=list(array.shape), dtype=array.dtype.str,
                         data_b64=base64.b64encode(array.tobytes()).decode())


def run(framework: str, **values: object) -> RunResult:
    return RunResult(status=RunStatus.ok, framework=framework,  # type: ignore[arg-type]
                     captured={k: captured(v) for k, v in values.items()})


def same(a: object, b: object, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    return compare_arrays(np.asarray(a), np.asarray(b), rtol, atol).match


def test_floats_match_within_tolerance_whatever_their_dtypes() -> None:
    assert same(np.array([1.0, 2.0], dtype=np.float32), np.array([1.0, 2.0 + 1e-7], dtype=np.float64))
    assert not same([1.0, 2.0], [1.0, 2.1])
    assert same([1.0, 2.0], [1.0, 2.1], rtol=0, atol=0.2)


def test_shapes_must_agree() -> None:
    result = compare_arrays(np.zeros((2, 1)), np.zeros(2), 1e-5, 1e-6)
    assert not result.match and result.reason == "shapes differ: (2, 1) vs (2,)"


def test_integers_and_booleans_match_only_when_equal() -> None:
    big = 10**6
    assert same(np.array([3, 1, 2], dtype=np.int32), np.array([3, 1, 2], dtype=np.int64))  # dtype alone is not checked...
    assert not same([big], [big + 1])                        # ...but rtol no longer hides an off-by-one
    assert not same([2**53], [2**53 + 1])                    # nor does a float64 round trip
    assert same([True, False], [True, False]) and not same(True, False)
    result = compare_arrays(np.array([0, 1, 2]), np.array([0, 2, 1]), 1e-5, 1e-6)
    assert result.reason == "values differ: [0, 1, 2] vs [0, 2, 1]"


def test_strings_match_only_when_equal() -> None:
    assert same("cpu", "cpu")
    assert same(["cpu", "cuda:0"], ["cpu", "cuda:0"])
    result = compare_arrays(np.asarray("cuda:0"), np.asarray("cpu"), 1e-5, 1e-6)
    assert not result.match and result.reason == "values differ: 'cuda:0' vs 'cpu'"
    assert not same(["a", "b"], ["b", "a"])
    one = compare_arrays(np.array(["cuda:0"]), np.array(["cpu"]), 1e-5, 1e-6)  # as captured
    assert one.reason == "values differ: 'cuda:0' vs 'cpu'"
    mixed = compare_arrays(np.asarray("1"), np.asarray(1), 1e-5, 1e-6)
    assert not mixed.match and mixed.reason is not None and "string against a number" in mixed.reason


def test_zero_tolerances_ask_for_the_same_dtype_too() -> None:
    result = compare_arrays(np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.int64), 0, 0)
    assert not result.match and result.reason == "dtypes differ: int32 vs int64"
    assert not same(np.float32(0.5), np.float64(0.5), rtol=0, atol=0)
    assert same(np.array([1, 2], dtype=np.int64), np.array([1, 2], dtype=np.int64), rtol=0, atol=0)
    assert same("cpu", "cuda", rtol=0, atol=0) is False
    assert same("float32", "float32", rtol=0, atol=0)          # any string length is one dtype
    assert not same(np.array([1.0], dtype=np.float32), np.array([1.0 + 1e-6], dtype=np.float32), rtol=0, atol=0)
    assert same(np.array([np.nan], dtype=np.float32), np.array([np.nan], dtype=np.float32), rtol=0, atol=0)


def test_compare_results_reads_captured_values_by_name() -> None:
    tf = run("tensorflow", where="cuda:0", traces=np.int32(1), y=np.array([1.0, 2.0], dtype=np.float32))
    pt = run("pytorch", where="cpu", traces=np.int64(1), y=np.array([1.0, 2.0], dtype=np.float32))
    result = compare_results(tf, pt, ["where", "traces", "y"])
    assert not result.match
    assert not result.names["where"].match and result.names["traces"].match and result.names["y"].match
    exact = compare_results(tf, pt, ["traces"], rtol=0, atol=0)
    assert not exact.match and exact.names["traces"].reason == "dtypes differ: int32 vs int64"


@pytest.mark.parametrize("missing", ["not captured", "did not finish"])
def test_a_missing_value_is_a_mismatch_with_a_reason(missing: str) -> None:
    tf = run("tensorflow", y=1.0)
    pt = (run("pytorch") if missing == "not captured"
          else RunResult.failed(RunStatus.error, "ValueError", "boom", framework="pytorch"))
    result = compare_results(tf, pt, ["y"])
    assert not result.match and missing in (result.names["y"].reason or "")


def test_infinities_on_both_sides_match_without_a_numpy_warning() -> None:
    import warnings

    a = np.array([np.inf, -np.inf, 1.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf - inf is nan: no RuntimeWarning in the log
        same = compare_arrays(a, a.copy(), rtol=1e-5, atol=1e-6)
        other = compare_arrays(a, np.array([np.inf, np.inf, 1.0], dtype=np.float32), 1e-5, 1e-6)
    assert same.match and same.max_abs_diff is None
    assert not other.match


def test_a_forged_array_is_a_mismatch_with_a_reason_not_a_crash() -> None:
    bad_code_point = CapturedArray(shape=[1], dtype="<U1",
                                   data_b64=base64.b64encode(b"\xff\xff\xff\xff").decode())
    wrong_length = CapturedArray(shape=[3], dtype="<f4", data_b64=base64.b64encode(b"x").decode())
    objects = CapturedArray(shape=[1], dtype="|O", data_b64=base64.b64encode(b"\0" * 8).decode())
    for forged in (bad_code_point, wrong_length, objects):
        tf = run("tensorflow", y="a")
        pt = RunResult(status=RunStatus.ok, framework="pytorch", captured={"y": forged})
        result = compare_results(tf, pt, ["y"])
        assert not result.match and (result.names["y"].reason or "").startswith(
            "not comparable"), (forged, result)


def test_values_too_large_to_compare_are_a_mismatch_that_says_so() -> None:
    from app.compare import MAX_COMPARED_ELEMENTS

    big = np.zeros(MAX_COMPARED_ELEMENTS + 1, dtype=np.int8)
    result = compare_results(run("tensorflow", y=big), run("pytorch", y=big), ["y"])
    assert not result.match and "too large to compare" in (result.names["y"].reason or "")
    small = np.zeros(MAX_COMPARED_ELEMENTS, dtype=np.int8)
    assert compare_results(run("tensorflow", y=small), run("pytorch", y=small), ["y"]).match
