"""Real architectures through the porter, each proved end to end: ResNet50 and DenseNet121
from keras.applications (weights=None, nothing downloaded), and hand-built ones: a small
UNet, a seq2seq LSTM, a GRU(reset_after=False) classifier, a Transformer encoder block."""

from __future__ import annotations

import re
import time
from typing import Any

import keras
import numpy as np
import pytest

from sandbox.porter import Port, port, prove
from tests.test_porter_layers import keys, randomize

L = keras.layers


def proved(model: keras.Model, inputs: Any = None) -> Port:
    start = time.monotonic()
    p = port(model)
    proof = prove(model, p, inputs=inputs)
    worst = max((r.max_abs_err for r in proof.rows), default=0.0)
    print(f"{model.name}: {proof.status}, {len(proof.rows)} layers, worst abs err "
          f"{worst:.2e}, {time.monotonic() - start:.1f} s")
    assert p.unsupported == [] and proof.error is None
    assert proof.status == "proved", [r for r in proof.rows + proof.outputs if r.status != "pass"][:3]
    return p


@pytest.mark.slow
@pytest.mark.parametrize("build", [
    lambda: keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3)),
    lambda: keras.applications.DenseNet121(weights=None, input_shape=(64, 64, 3))],
    ids=["ResNet50", "DenseNet121"])
def test_applications_are_proved(build: Any) -> None:
    p = proved(randomize(build()))
    assert {"kernel-layout", "bn-momentum-epsilon"} <= keys(p)


def unet() -> keras.Model:
    image = keras.Input((32, 32, 3), name="image")

    def block(x: Any, filters: int, name: str) -> Any:
        x = L.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
        x = L.BatchNormalization(name=f"{name}_bn")(x)
        x = L.ReLU(name=f"{name}_relu")(x)
        return L.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv2")(x)

    down1 = block(image, 8, "down1")
    down2 = block(L.MaxPooling2D(name="pool1")(down1), 16, "down2")
    bottom = block(L.MaxPooling2D(name="pool2")(down2), 32, "bottom")
    up2 = L.Conv2DTranspose(16, 2, strides=2, padding="same", name="up2")(bottom)
    up2 = block(L.Concatenate(name="skip2")([up2, down2]), 16, "dec2")
    up1 = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="up1")(up2)
    up1 = block(L.Concatenate(name="skip1")([up1, down1]), 8, "dec1")
    mask = L.Conv2D(1, 1, activation="sigmoid", name="mask")(up1)
    return randomize(keras.Model(image, mask, name="unet"))


def test_a_small_unet_with_transposed_convolutions_and_skips() -> None:
    p = proved(unet())
    assert "nn.ConvTranspose2d(32, 16, 2, stride=2)" in p.source
    assert "transpose-same-crop" in keys(p)  # the 3x3 one at stride 2
    assert p.source.count("self.skip") == 4  # two Concatenates, each built and called once


def seq2seq(mask_zero: bool) -> keras.Model:
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    embedded = L.Embedding(30, 8, mask_zero=mask_zero, name="source_embedding")(source)
    _, h, c = L.LSTM(16, return_state=True, name="encoder")(embedded)
    decoded = L.Embedding(30, 8, mask_zero=mask_zero, name="target_embedding")(target)
    decoded = L.LSTM(16, return_sequences=True, name="decoder")(decoded, initial_state=[h, c])
    words = L.Dense(30, activation="softmax", name="words")(decoded)
    return randomize(keras.Model([source, target], words, name="seq2seq"))


@pytest.mark.parametrize("mask_zero", [False, True])
def test_a_seq2seq_lstm_hands_the_encoder_state_to_the_decoder(mask_zero: bool) -> None:
    padded = [np.array([[4, 9, 2, 0, 0], [7, 1, 3, 8, 0]]), np.array([[1, 5, 6, 0], [1, 2, 0, 0]])]
    p = proved(seq2seq(mask_zero), inputs=padded if mask_zero else None)
    assert "_, encoder_h, encoder_c = self.encoder(" in p.source
    assert "encoder_h, encoder_c" in p.source.split("self.decoder(")[1].split(")")[0]


def test_a_gru_classifier_without_reset_after() -> None:
    ids = keras.Input((12,), dtype="int32", name="ids")
    x = L.Embedding(50, 8, mask_zero=True, name="embedding")(ids)
    x = L.GRU(16, reset_after=False, return_sequences=True, name="gru1")(x)
    x = L.GRU(16, reset_after=False, name="gru2")(x)
    x = L.Dropout(0.3, name="dropout")(x)
    classes = L.Dense(3, activation="softmax", name="classes")(x)
    model = randomize(keras.Model(ids, classes, name="gru_classifier"))
    padded = np.array([[5, 3, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0], [2] * 12])
    p = proved(model, inputs=padded)
    assert "gru-reset-after" in keys(p) and "GRUResetBeforeCell(8, 16)" in p.source


def transformer_encoder(length: int = 16, width: int = 16, heads: int = 4,
                        first_token: bool = False) -> keras.Model:
    ids = keras.Input((length,), dtype="int32", name="token_ids")
    positions = keras.Input((length,), dtype="int32", name="positions")
    tokens = L.Embedding(50, width, name="token_embedding")(ids)
    x = L.Add(name="embeddings")([tokens, L.Embedding(length, width, name="position_embedding")(
        positions)])
    padding_mask = keras.ops.expand_dims(keras.ops.not_equal(ids, 0), 1)  # (batch, 1, length)
    attended = L.MultiHeadAttention(heads, width // heads, name="self_attention")(
        x, x, attention_mask=padding_mask)
    x = L.Add(name="residual1")([x, L.Dropout(0.1, name="attention_dropout")(attended)])
    x = L.LayerNormalization(epsilon=1e-6, name="norm1")(x)
    ff = L.Dense(4 * width, activation="gelu", name="ff_in")(x)
    ff = L.Dense(width, name="ff_out")(L.Dropout(0.1, name="ff_dropout")(ff))
    x = L.LayerNormalization(epsilon=1e-6, name="norm2")(L.Add(name="residual2")([x, ff]))
    pooled = x[:, 0] if first_token else L.GlobalAveragePooling1D(name="pool")(x)
    logits = L.Dense(2, name="logits")(pooled)
    return randomize(keras.Model([ids, positions], logits, name="transformer_encoder"))


@pytest.mark.parametrize("first_token", [False, True], ids=["mean", "first-token"])
def test_a_transformer_encoder_block_with_a_padding_mask(first_token: bool) -> None:
    ids = np.array([[7, 3, 9, 12, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [5] * 16])
    positions = np.tile(np.arange(16), (2, 1))
    p = proved(transformer_encoder(first_token=first_token), inputs=[ids, positions])
    assert ("[:, 0]" in p.source) == first_token
    assert re.search(r"(not_equal\w*) = token_ids != 0\n.*= \1\.unsqueeze\(1\)\n", p.source, re.S)
    assert "attention-mask" in keys(p) and "layernorm-epsilon" in keys(p)
    assert "nn.MultiheadAttention(16, 4, batch_first=True)" in p.source
