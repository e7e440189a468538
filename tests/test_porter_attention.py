"""Attention layers through the porter: MultiHeadAttention with masks (given, causal, or
read off an Embedding's mask), of different lengths and widths and output shapes;
Attention and AdditiveAttention; the Dot merge."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

from sandbox.porter import Port, port, prove
from tests.test_porter_layers import keys, proved, randomize

L = keras.layers
PADDED = np.array([[3, 4, 5, 0, 0, 0], [0, 2, 0, 7, 1, 0]], dtype="int64")


def proved_on(model: keras.Model, inputs: Any) -> Port:
    p = port(model)
    proof = prove(model, p, inputs=inputs)
    assert proof.status == "proved", [r for r in proof.rows + proof.outputs if r.status != "pass"]
    return p


def two_inputs(call: Callable[..., Any], q_shape: tuple[int, int] = (5, 8),
               v_shape: tuple[int, int] = (7, 6), **kw: Any) -> keras.Model:
    q, v = keras.Input(q_shape, name="q"), keras.Input(v_shape, name="v")
    mha = L.MultiHeadAttention(name="mha", **{"num_heads": 2, "key_dim": 4, **kw})
    return randomize(keras.Model([q, v], call(mha, q, v)))


@pytest.mark.parametrize("kw,torch_class", [
    ({}, "nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=6)"),
    ({"use_bias": False}, "bias=False"), ({"value_dim": 3}, "MultiHeadAttention("),
    ({"output_shape": 5}, "MultiHeadAttention("), ({"key_dim": 3}, "MultiHeadAttention("),
    ({"num_heads": 1, "key_dim": 8}, "nn.MultiheadAttention(8, 1,")], ids=repr)
def test_query_and_value_of_different_lengths_and_widths(kw: dict[str, Any], torch_class: str) -> None:
    p = proved(two_inputs(lambda mha, q, v: mha(q, v), **kw))
    assert torch_class in p.source


def test_a_key_of_its_own_width() -> None:
    q, v, k = keras.Input((5, 8)), keras.Input((7, 6)), keras.Input((7, 3))
    model = randomize(keras.Model([q, v, k], L.MultiHeadAttention(2, 4)(q, v, key=k)))
    assert "kdim=3, vdim=6" in proved(model).source


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3}], ids=repr)
@pytest.mark.parametrize("same", [True, False], ids=["self", "cross"])
def test_a_causal_mask(same: bool, kw: dict[str, Any]) -> None:
    p = proved(two_inputs(lambda mha, q, v: mha(q, q if same else v, use_causal_mask=True),
                          v_shape=(7, 8), **kw))
    assert "causal=True" in p.source and "attention-mask" in keys(p)


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3}], ids=repr)
def test_a_given_attention_mask(kw: dict[str, Any]) -> None:
    q, v = keras.Input((5, 8), name="q"), keras.Input((7, 8), name="v")
    allowed = keras.Input((5, 7), dtype="bool", name="allowed")
    mha = L.MultiHeadAttention(2, 4, name="mha", **kw)
    model = randomize(keras.Model([q, v, allowed], mha(q, v, attention_mask=allowed)))
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((2, 5, 8)).astype("float32"),
              rng.standard_normal((2, 7, 8)).astype("float32"), rng.random((2, 5, 7)) > 0.4]
    inputs[2][0, 1] = False  # a query that may attend to nothing attends evenly, as in Keras
    p = proved_on(model, inputs)
    assert "attn_mask=attention_bias(allowed," in p.source


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3}], ids=repr)
def test_an_embedding_mask_reaches_multi_head_attention(kw: dict[str, Any]) -> None:
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(10, 8, mask_zero=True, name="embed")(ids)
    model = randomize(keras.Model(ids, L.MultiHeadAttention(2, 4, name="mha", **kw)(x, x)))
    p = proved_on(model, PADDED)
    assert re.search(r"(not_equal\w*)\[:, :, None\] & \1\[:, None, :\]", p.source)


def test_a_port_that_ignored_the_embedding_mask_would_fail_its_proof() -> None:
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(10, 8, mask_zero=True, name="embed")(ids)
    model = randomize(keras.Model(ids, L.MultiHeadAttention(2, 4, name="mha")(x, x)))
    p = proved_on(model, PADDED)
    assert "mask = mask & allowed.bool()" in p.source
    p.source = p.source.replace("mask = mask & allowed.bool()", "mask = mask")
    assert prove(model, p, inputs=PADDED).status == "failed"


ATTENTIONS = [(L.Attention, {}), (L.Attention, {"use_scale": True}),
              (L.Attention, {"score_mode": "concat"}),
              (L.Attention, {"score_mode": "concat", "use_scale": True}),
              (L.AdditiveAttention, {}), (L.AdditiveAttention, {"use_scale": False})]


@pytest.mark.parametrize("cls,kw", ATTENTIONS, ids=repr)
@pytest.mark.parametrize("inputs", ["query-value", "query-value-key", "causal"])
def test_attention_and_additive_attention(cls: type, kw: dict[str, Any], inputs: str) -> None:
    q, v = keras.Input((5, 4), name="q"), keras.Input((7, 4), name="v")
    layer = cls(name="attention", **kw)
    if inputs == "causal":
        model = keras.Model(q, layer([q, q], use_causal_mask=True))
    elif inputs == "query-value-key":
        model = keras.Model([q, v], layer([q, v, L.Dense(4, name="key")(v)]))
    else:
        model = keras.Model([q, v], layer([q, v]))
    p = proved(randomize(model))
    assert "class Attention(nn.Module)" in p.source
    if kw.get("use_scale", cls is L.AdditiveAttention):
        assert "attention.scale" in p.state_dict


@pytest.mark.parametrize("cls,kw", ATTENTIONS[::2], ids=repr)
def test_attention_reads_the_embedding_mask(cls: type, kw: dict[str, Any]) -> None:
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(10, 4, mask_zero=True, name="embed")(ids)
    p = proved_on(randomize(keras.Model(ids, cls(**kw)([x, x]))), PADDED)
    assert re.search(r"query_mask=(not_equal\w*), value_mask=\1\)", p.source)


def test_attention_with_masks_given() -> None:
    q, v = keras.Input((5, 4), name="q"), keras.Input((7, 4), name="v")
    qm, vm = keras.Input((5,), dtype="bool", name="qm"), keras.Input((7,), dtype="bool", name="vm")
    model = randomize(keras.Model([q, v, qm, vm], L.Attention()([q, v], mask=[qm, vm])))
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((2, 5, 4)).astype("float32"),
              rng.standard_normal((2, 7, 4)).astype("float32"), rng.random((2, 5)) > 0.3,
              rng.random((2, 7)) > 0.3]
    inputs[3][:, 0] = True
    proved_on(model, inputs)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shapes,axes", [
    (((6,), (6,)), 1), (((5, 4), (7, 4)), 2), (((5, 4), (5, 3)), 1), (((5, 4), (4, 5)), (1, 2)),
    (((5, 4), (7, 4)), -1)], ids=repr)
def test_dot(shapes: tuple[tuple[int, ...], ...], axes: Any, normalize: bool) -> None:
    a, b = keras.Input(shapes[0], name="a"), keras.Input(shapes[1], name="b")
    dense = L.Dense(shapes[0][-1], name="dense")(a)
    p = proved(randomize(keras.Model([a, b], L.Dot(axes, normalize=normalize)([dense, b]))))
    assert "class Dot(nn.Module)" in p.source


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3}], ids=repr)
def test_attention_scores_are_returned_per_head(kw: dict[str, Any]) -> None:
    model = two_inputs(lambda mha, q, v: mha(q, v, return_attention_scores=True,
                                             use_causal_mask=True), v_shape=(7, 8), **kw)
    p = proved(model)
    assert "need_weights=True," in p.source and "average_attn_weights=False," in p.source
    assert "mha, mha_1 = self.mha(" in p.source


def test_hostile_names_in_a_masked_attention_model_cannot_inject_code() -> None:
    from tests.test_porter_models import HOSTILE, calls_of

    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(10, 8, mask_zero=True, name="embed")(ids)
    x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = L.Bidirectional(L.LSTM(3, return_state=True), merge_mode=None, name="bi")(x)
    model = randomize(keras.Model(ids, x, name="m"))
    for i, op in enumerate([*model.operations, model]):
        op.name = HOSTILE + ["", "'", '"""', "\\", "\u2028"][i % 5]
    p = port(model)
    compile(p.source, "model.py", "exec")
    assert not calls_of(p.source) & {"system", "os", "exec", "__import__"}
    assert all("rm -rf" not in line or line.lstrip().startswith("#")
               for line in p.source.splitlines())
