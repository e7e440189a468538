"""The user's own inputs (.npy / .npz) proved beside the seeded ones, through a real sandbox.

The files reach the run as the model does, a read-only descriptor; everything
about them is read there: a wrong shape, count or dtype, a pickle, or not
numpy at all is a port with a clear error, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_port_run import Porter, small_model

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def porter() -> Iterator[Porter]:
    p = Porter()
    yield p
    p.close()


def two_input_model() -> Any:
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    extra = keras.Input((3,), name="extra")
    x = keras.layers.Embedding(10, 4, name="embed")(tokens)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Concatenate(name="join")([x, extra])
    return keras.Model([tokens, extra], keras.layers.Dense(2, name="head")(x), name="two")


@pytest.fixture
def saved_small(tmp_path: Path) -> Path:
    saved = tmp_path / "small.keras"
    small_model().save(saved)
    return saved


def test_a_model_is_proved_on_the_users_npy_as_well(porter: Porter, tmp_path: Path,
                                                    saved_small: Path) -> None:
    inputs = tmp_path / "mine.npy"
    np.save(inputs, np.random.default_rng(1).standard_normal((3, 8, 8, 3)))  # float64: cast
    report = porter.port(tmp_path / "out", saved_small, inputs)
    assert report.status == "proved" and report.error is None, report
    assert report.batches == ["seeded random inputs (seed 0, 2 samples)",
                              "your inputs (3 samples)"]


def test_npz_inputs_go_by_input_name_or_position(porter: Porter, tmp_path: Path) -> None:
    saved = tmp_path / "two.keras"
    two_input_model().save(saved)
    rng = np.random.default_rng(2)
    tokens, extra = rng.integers(0, 10, (4, 5)), rng.standard_normal((4, 3)).astype(np.float32)
    by_name, by_position = tmp_path / "named.npz", tmp_path / "positional.npz"
    np.savez(by_name, extra=extra, tokens=tokens)
    np.savez_compressed(by_position, tokens, extra)
    for inputs in (by_name, by_position):
        report = porter.port(tmp_path / inputs.stem, saved, inputs)
        assert report.status == "proved", report
        assert report.batches[1] == "your inputs (4 samples)"


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: np.save(p, np.zeros((2, 8, 8, 4), np.float32)),
     "expects shape (batch, 8, 8, 3); the given array has shape (2, 8, 8, 4)"),
    (lambda p: np.save(p, np.zeros((8, 8, 3), np.float32)),
     "expects shape (batch, 8, 8, 3); the given array has shape (8, 8, 3)"),
    (lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
     "no pickled objects"),
    (lambda p: p.write_bytes(b"\x93NUMPY not really an array at all"),
     "can't be read as .npy"),
    (lambda p: p.write_bytes(b"just some text\n"), "can't be read as .npy"),
    (lambda p: (np.save(p, np.zeros((2, 8, 8, 3), np.float32)),
                p.write_bytes(p.read_bytes()[:300])), "can't be read as .npy"),
    (lambda p: np.save(p, np.zeros((2, 8, 8, 3), np.complex64)),
     "takes float32; the given array is complex64"),
    (lambda p: np.save(p, np.full((2, 8, 8, 3), np.nan, np.float32)), "NaN or infinity"),
], ids=["shape", "no-batch", "pickled-objects", "bad-header", "not-npy", "cut-short",
     "complex", "nan"])
def test_inputs_that_dont_fit_are_a_clear_error(porter: Porter, tmp_path: Path,
                                                saved_small: Path, make: Any,
                                                says: str) -> None:
    inputs = tmp_path / "bad.npy"
    make(inputs)
    out = tmp_path / "out"
    report = porter.port(out, saved_small, inputs)
    assert report.status == "failed" and report.error is not None, report
    assert report.error.type == "InputsRefused"
    assert says in report.error.message
    assert not list(out.iterdir())


def test_a_wrong_count_of_inputs_names_them(porter: Porter, tmp_path: Path) -> None:
    saved = tmp_path / "two.keras"
    two_input_model().save(saved)
    one, wrong_names = tmp_path / "one.npy", tmp_path / "wrong.npz"
    np.save(one, np.zeros((2, 5), np.int64))
    np.savez(wrong_names, tokens=np.zeros((2, 5), np.int64))
    report = porter.port(tmp_path / "a", saved, one)
    assert report.error is not None
    assert "the model has 2 inputs (tokens, extra)" in report.error.message
    report = porter.port(tmp_path / "b", saved, wrong_names)
    assert report.error is not None
    assert "name them tokens, extra (or arr_0, arr_1, in that order)" in report.error.message


def test_an_embeddings_input_takes_indices_in_its_vocabulary(porter: Porter,
                                                             tmp_path: Path) -> None:
    saved = tmp_path / "two.keras"
    two_input_model().save(saved)
    floats, too_big = tmp_path / "floats.npz", tmp_path / "big.npz"
    np.savez(floats, tokens=np.zeros((2, 5), np.float32), extra=np.zeros((2, 3)))
    np.savez(too_big, tokens=np.full((2, 5), 10), extra=np.zeros((2, 3)))
    report = porter.port(tmp_path / "a", saved, floats)
    assert report.error is not None and "input 'tokens' takes whole numbers" in \
        report.error.message
    report = porter.port(tmp_path / "b", saved, too_big)
    assert report.error is not None and "takes indices 0 to 9" in report.error.message


def test_a_wrong_weight_only_the_users_inputs_reach_fails_the_proof(tmp_path: Path) -> None:
    # relu(x·W - 100) is 0 for every seeded input (standard normal): a wrong kernel hides
    # there, and shows on inputs large enough to pass the bias.
    from sandbox.porter import port, prove
    from sandbox.porter.given_inputs import load_given_inputs

    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, activation="relu", name="gate")
    model = keras.Model(inputs, dense(inputs), name="gated")
    dense.set_weights([np.ones((3, 2), np.float32), np.full((2,), -100.0, np.float32)])
    ported = port(model)
    ported.state_dict["gate.weight"] = ported.state_dict["gate.weight"] * 1.5
    assert prove(model, ported).status == "proved"  # the seeded batch alone misses it
    np.save(tmp_path / "large.npy", np.full((2, 3), 100.0))
    with (tmp_path / "large.npy").open("rb") as f:
        given = load_given_inputs(f.fileno(), ".npy", model)
    proof = prove(model, ported, inputs=given)
    assert proof.status == "failed" and proof.batches == 2
    assert {r.name: r.status for r in proof.rows}["gate"] == "fail"


def test_many_given_samples_run_in_small_batches(tmp_path: Path) -> None:
    from sandbox.porter import port, prove
    from sandbox.porter.proof import GIVEN_SAMPLES_PER_BATCH

    model = small_model("many")
    samples = 2 * GIVEN_SAMPLES_PER_BATCH + 1
    given = np.random.default_rng(5).standard_normal((samples, 8, 8, 3)).astype(np.float32)
    proof = prove(model, port(model), inputs=given)
    assert proof.status == "proved" and proof.batches == 1 + 3


def test_a_pickled_array_inside_an_npz_is_refused_unread(porter: Porter, tmp_path: Path,
                                                         saved_small: Path) -> None:
    inputs = tmp_path / "evil.npz"
    np.savez(inputs, arr_0=np.array([{"a": 1}, None], dtype=object))
    report = porter.port(tmp_path / "out", saved_small, inputs)
    assert report.error is not None and report.error.type == "InputsRefused"
    assert "no pickled objects" in report.error.message
    assert "allow_pickle=False" in report.error.message  # numpy's own refusal, not a crash


def test_a_port_cannot_write_the_users_inputs_and_no_later_run_sees_them(
        porter: Porter, tmp_path: Path) -> None:
    from sandbox.protocol import RunRequest
    from tests.test_port_run import CLIENT

    code = ("import os, keras\n"
            "try:\n    os.write(7, b'overwritten')\n    wrote = 'yes'\n"
            "except OSError:\n    wrote = 'no'\n"
            "inputs = keras.Input((4,), name=f'wrote_{wrote}')\n"
            "model = keras.Model(inputs, keras.layers.Dense(2, name='d')(inputs))\n")
    inputs = tmp_path / "mine.npy"
    np.save(inputs, np.ones((2, 4), np.float32))
    before = inputs.read_bytes()
    report = porter.port(tmp_path / "out", code=code, inputs=inputs)
    assert report.status == "proved", report
    assert "wrote_no" in report.keras_summary and "wrote_yes" not in report.keras_summary
    assert report.batches[-1] == "your inputs (2 samples)"  # fd 7 was there, and read
    assert inputs.read_bytes() == before
    probe = RunRequest(framework="tensorflow",
                       code="import os\nprint(sorted(int(f) for f in os.listdir('/proc/self/fd')))")
    result = porter.loop.run_until_complete(porter.pool.run(probe, CLIENT))
    assert result.status == "ok", result
    assert json.loads(result.stdout) == [0, 1, 2, 3, 4, 5], result.stdout
