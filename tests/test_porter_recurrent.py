"""Recurrent layers through the porter: masks carried from Embedding and Masking,
go_backwards, states in and out, GRU(reset_after=False), each Bidirectional merge mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import torch

from sandbox.porter import Port, port, prove
from sandbox.porter.proof import load_module
from tests.test_porter_layers import keys, proved, randomize, stack

L = keras.layers
# Padded token ids: trailing zeros, and zeros in the middle, which Keras masks too.
PADDED = np.array([[3, 4, 5, 0, 0, 0], [0, 2, 0, 7, 1, 0]], dtype="int64")

KINDS: dict[str, Callable[..., keras.Layer]] = {
    "LSTM": L.LSTM, "GRU": L.GRU, "SimpleRNN": L.SimpleRNN,
    "GRU-reset-before": lambda units, **kw: L.GRU(units, reset_after=False, **kw)}


def proved_on(model: keras.Model, inputs: Any) -> Port:
    """Proved on the seeded random inputs and on `inputs` as well."""
    p = port(model)
    proof = prove(model, p, inputs=inputs)
    assert proof.status == "proved", [r for r in proof.rows + proof.outputs if r.status != "pass"]
    return p


def masked(layer: keras.Layer) -> keras.Model:
    return stack((6,), L.Embedding(10, 4, mask_zero=True), layer, dtype="int32")


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_a_mask_from_embedding_is_carried_into_the_recurrent_layer(
        kind: str, return_sequences: bool, go_backwards: bool) -> None:
    model = masked(KINDS[kind](5, return_sequences=return_sequences, go_backwards=go_backwards))
    p = proved_on(model, PADDED)
    assert "!= 0" in p.source and "mask=" in p.source and "rnn-mask" in keys(p)
    assert ("go-backwards" in keys(p)) == go_backwards


def test_a_port_that_ignored_the_mask_would_fail_its_proof() -> None:
    import re

    model = masked(L.LSTM(5))
    p = proved_on(model, PADDED)
    p.source = re.sub(r", mask=\w+\)", ")", p.source)
    assert "mask=" not in p.source.split("class UnderTest")[1]
    assert prove(model, p, inputs=PADDED).status == "failed"


def test_masking_zeroes_the_masked_steps_and_masks_the_gru() -> None:
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype("float32")
    x[0, 3:] = 0.5
    x[1, :2] = 0.5
    p = proved_on(stack((6, 3), L.Masking(0.5), L.GRU(4, return_sequences=True)), x)
    assert "Masking(0.5)" in p.source and ".any(dim=2)" in p.source


def test_a_masked_average_pools_the_unmasked_steps_only() -> None:
    model = masked(L.LSTM(5, return_sequences=True))
    model = randomize(keras.Model(model.input, L.GlobalAveragePooling1D()(model.output)))
    p = proved_on(model, PADDED)
    assert "MaskedAveragePooling1D" in p.source


def test_a_layer_handed_a_mask_it_does_not_honour_is_a_stub() -> None:
    p = port(masked(L.Softmax()))
    assert [lp.class_name for lp in p.unsupported] == ["Softmax"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_go_backwards_returns_the_steps_in_reading_order(kind: str, go_backwards: bool) -> None:
    proved(stack((7, 3), KINDS[kind](5, return_sequences=True, go_backwards=go_backwards)))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_return_state_gives_the_output_then_the_states(kind: str, return_sequences: bool) -> None:
    x = keras.Input((7, 3), name="x")
    outputs = KINDS[kind](5, return_state=True, return_sequences=return_sequences,
                          name="encoder")(x)
    p = proved(randomize(keras.Model(x, outputs)))
    states = "encoder_h, encoder_c" if kind == "LSTM" else "encoder_h"
    assert f"encoder, {states} = self.encoder(x)" in p.source


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_is_passed_to_the_loop(kind: str) -> None:
    x, h0 = keras.Input((7, 3), name="x"), keras.Input((5,), name="h0")
    states = [h0, L.Dense(5, name="c0")(h0)] if kind == "LSTM" else [h0]
    model = randomize(keras.Model([x, h0], KINDS[kind](5, name="rnn")(x, initial_state=states)))
    p = proved(model)
    assert "self.rnn(x, h0" in p.source


def test_gru_without_reset_after_has_its_own_cell() -> None:
    p = proved(stack((7, 3), L.GRU(5, reset_after=False, use_bias=False)))
    assert "class GRUResetBeforeCell" in p.source and "gru-reset-after" in keys(p)


def test_a_stateful_layer_is_a_stub_whose_config_says_so() -> None:
    x = keras.Input((7, 3), batch_size=2)
    model = randomize(keras.Model(x, L.LSTM(4, stateful=True, name="stateful_lstm")(x)))
    p = port(model)
    assert [lp.name for lp in p.unsupported] == ["stateful_lstm"]
    assert '\\"stateful\\": true' in p.source or '"stateful": true' in p.source
    proof = prove(model, p)
    assert proof.status == "partial"
    with pytest.raises(NotImplementedError, match="stateful=True carries the state"):
        load_module(p)(torch.zeros(2, 7, 3))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_bidirectional_each_merge_mode(kind: str, merge_mode: str | None,
                                       return_sequences: bool) -> None:
    layer = L.Bidirectional(KINDS[kind](4, return_sequences=return_sequences),
                            merge_mode=merge_mode)
    p = proved(stack((6, 3), layer))
    assert "bidirectional=True" in p.source


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_with_a_mask(merge_mode: str | None, return_sequences: bool) -> None:
    layer = L.Bidirectional(L.LSTM(4, return_sequences=return_sequences), merge_mode=merge_mode)
    p = proved_on(masked(layer), PADDED)
    assert "= Bidirectional(" in p.source and "Recurrent(nn.LSTMCell(4, 4)" in p.source


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gru_without_reset_after_and_its_states(return_sequences: bool) -> None:
    x = keras.Input((6, 3), name="x")
    layer = L.Bidirectional(L.GRU(4, reset_after=False, return_state=True,
                                  return_sequences=return_sequences), name="bi")
    p = proved(randomize(keras.Model(x, layer(x))))
    assert "GRUResetBeforeCell" in p.source
    assert p.source.count("bi, bi_1, bi_2 = self.bi(x)") == 1


def test_bidirectional_with_initial_states() -> None:
    x, h0 = keras.Input((6, 3), name="x"), keras.Input((4,), name="h0")
    layer = L.Bidirectional(L.GRU(4), merge_mode="sum", name="bi")
    model = randomize(keras.Model([x, h0], layer(x, initial_state=[h0, L.Dense(4)(h0)])))
    proved(model)


def test_the_loop_blocks_pass_ruff() -> None:
    import subprocess
    import sys
    from pathlib import Path

    model = masked(L.Bidirectional(L.GRU(4, reset_after=False, return_sequences=True)))
    model = randomize(keras.Model(model.input, L.GlobalAveragePooling1D()(model.output)))
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "check", "--no-cache", "--isolated", "--select", "E,F,W,B,UP,SIM",
         "--line-length", "120", "--stdin-filename", "model.py", "-"],
        input=port(model).source, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("inner", [
    lambda: L.Conv2D(4, 3, activation="relu"), lambda: L.Conv2D(4, 3, padding="same"),
    lambda: L.MaxPooling2D(), lambda: L.BatchNormalization(), lambda: L.Flatten(),
    lambda: L.LayerNormalization(), lambda: L.Dropout(0.2)], ids=repr)
def test_time_distributed_runs_the_inner_layer_on_every_step(inner: Callable[[], Any]) -> None:
    p = proved(stack((3, 6, 7, 2), L.TimeDistributed(inner())))
    assert "TimeDistributed(" in p.source


def test_time_distributed_cnn_into_an_lstm() -> None:
    p = proved(stack((4, 8, 8, 1), L.TimeDistributed(L.Conv2D(4, 3, activation="relu")),
                     L.TimeDistributed(L.MaxPooling2D()), L.TimeDistributed(L.Flatten()),
                     L.LSTM(6)))
    assert p.source.count("TimeDistributed(") >= 3


def test_time_distributed_over_what_it_cannot_fold_is_a_stub() -> None:
    p = port(stack((3, 6, 7, 2), L.TimeDistributed(L.Conv2D(4, 3, strides=2, padding="same"))))
    assert [lp.class_name for lp in p.unsupported] == ["TimeDistributed"]


@pytest.mark.parametrize("merge", [L.Concatenate, L.Add, L.Average, L.Subtract])
@pytest.mark.parametrize("both_masked", [True, False])
def test_a_mask_through_a_merge_reaches_the_lstm(merge: type, both_masked: bool) -> None:
    ids = keras.Input((6,), dtype="int32", name="ids")
    a = L.Embedding(10, 4, mask_zero=True, name="masked")(ids)
    b = L.Embedding(10, 4, mask_zero=both_masked, name="other")(ids)
    model = randomize(keras.Model(ids, L.LSTM(5, name="lstm")(merge()([a, b]))))
    p = proved_on(model, PADDED)
    # Keras keeps the mask through a Concatenate; the other merges only if every input has one.
    assert ("mask=" in p.source) == (both_masked or merge is L.Concatenate)


@pytest.mark.parametrize("merge", [L.Multiply, L.Maximum, L.Minimum])
def test_a_merge_whose_result_a_mask_changes_is_a_stub(merge: type) -> None:
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(10, 4, mask_zero=True, name="masked")(ids)
    model = randomize(keras.Model(ids, merge(name="merge")([L.Dense(3)(x), L.Dense(3)(x)])))
    p = port(model)
    assert [lp.name for lp in p.unsupported] == ["merge"]
    assert prove(model, p, inputs=PADDED).status == "partial"


@pytest.mark.parametrize("layer", [
    lambda **kw: L.LSTM(5, recurrent_activation="hard_sigmoid", **kw),
    lambda **kw: L.LSTM(5, activation="relu", recurrent_activation="hard_sigmoid", **kw),
    lambda **kw: L.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid", **kw),
    lambda **kw: L.SimpleRNN(5, activation="relu", **kw)], ids=["lstm-hard", "lstm-relu",
                                                              "gru-hard", "rnn-relu"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_layers_with_other_activations(layer: Callable[..., keras.Layer],
                                                 return_sequences: bool) -> None:
    proved(stack((7, 3), layer(return_sequences=return_sequences)))
    proved_on(masked(layer(return_sequences=return_sequences)), PADDED)
    proved(stack((7, 3), L.Bidirectional(layer(return_sequences=return_sequences))))


def test_a_keras_2_lstm_with_hard_sigmoid_gates_says_so() -> None:
    p = proved(stack((7, 3), L.LSTM(5, recurrent_activation="hard_sigmoid")))
    assert {"hard-sigmoid", "rnn-activations"} <= keys(p)
    assert "KerasLSTMCell(3, 5, nn.Tanh(), nn.Hardsigmoid())" in p.source


@pytest.mark.parametrize("use_bias", [True, False])
def test_a_gru_with_reset_after_and_other_activations_has_a_cell_of_its_own(use_bias: bool) -> None:
    layer = L.GRU(5, activation="relu", recurrent_activation="hard_sigmoid", use_bias=use_bias)
    p = proved(stack((7, 3), layer))
    assert "KerasGRUCell(3, 5, nn.ReLU(), nn.Hardsigmoid())" in p.source
    proved_on(masked(L.GRU(5, recurrent_activation="hard_sigmoid", return_sequences=True)), PADDED)


def test_a_simple_rnn_with_an_activation_torch_lacks_is_a_stub() -> None:
    p = port(stack((7, 3), L.SimpleRNN(5, activation="sigmoid")))
    assert [lp.class_name for lp in p.unsupported] == ["SimpleRNN"]
