"""Each layer the porter converts, on the settings that matter, proved against Keras
with random weights and inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

from sandbox.porter import Port, port, prove


def randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "int" in str(w.dtype):
            continue
        # Kernels scaled by fan-in keep deep stacks' activations near 1.
        fan_in = int(np.prod(w.shape[:-1])) if len(w.shape) >= 2 else 4
        if "variance" in w.path:
            values = rng.uniform(0.5, 2.0, w.shape)
        else:
            values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), w.shape)
        w.assign(values.astype("float32"))
    return model


def stack(shape: tuple[int, ...], *layers: keras.Layer, dtype: str = "float32") -> keras.Model:
    inp = keras.Input(shape, dtype=dtype, name="x")
    x = inp
    for layer in layers:
        x = layer(x)
    return randomize(keras.Model(inp, x, name="under_test"))


def proved(model: keras.Model, **kw: Any) -> Port:
    p = port(model, **kw)
    proof = prove(model, p)
    assert proof.error is None
    bad = [r for r in proof.rows + proof.outputs if r.status != "pass"]
    assert proof.status == "proved", bad
    for trap in p.traps:  # every trap is said where it happens
        assert f"# {trap.key}: " in p.source
    attributes = {lp.attribute for lp in p.layers}
    assert all(key.rsplit(".", 1)[0] in attributes or key.split(".")[0] in attributes
               for key in p.state_dict)
    return p


def keys(p: Port) -> set[str]:
    return {t.key for t in p.traps}


L = keras.layers
CONV = functools.partial(L.Conv2D, 4, 3, padding="same")

ACTIVATIONS = ["relu", "gelu", "sigmoid", "tanh", "softmax", "elu", "selu", "silu", "swish",
               "hard_sigmoid", "relu6", "leaky_relu", "softplus", "linear", "mish",
               "hard_silu", "softsign", "log_softmax"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_by_name(name: str) -> None:
    p = proved(stack((3, 5), L.Dense(6), L.Activation(name)))
    if name in ("hard_sigmoid", "leaky_relu"):
        assert keys(p) >= {name.replace("_", "-") if name == "hard_sigmoid"
                           else "leaky-relu-slope"}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fused_activation_after_a_conv_is_applied_channels_first(name: str) -> None:
    proved(stack((5, 5, 2), L.Conv2D(3, 3, activation=name)))


def test_gelu_both_approximations() -> None:
    tanh = functools.partial(keras.activations.gelu, approximate=True)
    p = proved(stack((4,), L.Dense(8), L.Activation(tanh), L.Dense(3, activation="gelu")))
    assert 'approximate="tanh"' in p.source
    assert "nn.GELU()" not in p.source and "F.gelu(self.dense_1(dense), )" not in p.source


@pytest.mark.parametrize("layer", [
    L.Softmax(axis=1), L.Softmax(axis=-1), L.ReLU(max_value=6.0), L.ReLU(negative_slope=0.1),
    L.ReLU(max_value=3.0), L.LeakyReLU(), L.ELU(alpha=0.5)], ids=repr)
def test_activation_layers_on_a_conv_output(layer: keras.Layer) -> None:
    proved(stack((5, 5, 2), CONV(), layer))


def test_hard_sigmoid_is_keras_3s_formula() -> None:
    p = proved(stack((8,), L.Dense(8), L.Activation("hard_sigmoid")))
    assert "nn.Hardsigmoid()" in p.source and "hard-sigmoid" in keys(p)


@pytest.mark.parametrize("dense", [L.Dense(5), L.Dense(5, use_bias=False),
                                   L.Dense(5, activation="relu")], ids=repr)
@pytest.mark.parametrize("shape", [(4,), (3, 4)])
def test_dense(dense: keras.Layer, shape: tuple[int, ...]) -> None:
    p = proved(stack(shape, dense))
    assert "kernel-layout" in keys(p)
    assert p.state_dict["dense.weight"].shape == (5, 4) if "dense.weight" in p.state_dict else True


@pytest.mark.parametrize("layer", [L.Dropout(0.5), L.SpatialDropout2D(0.3),
                                   L.GaussianNoise(1.0), L.GaussianDropout(0.3)], ids=repr)
def test_noise_and_dropout_do_nothing_at_inference(layer: keras.Layer) -> None:
    proved(stack((6, 6, 2), CONV(), layer, L.Flatten(), L.Dense(3)))


def test_flatten_after_a_conv_keeps_keras_order() -> None:
    p = proved(stack((6, 6, 2), L.Conv2D(4, 3), L.Flatten(), L.Dense(3)))
    assert "flatten-channels-last" in keys(p)
    assert ".permute(0, 2, 3, 1)" in p.source


def test_flatten_of_dense_features_has_no_trap() -> None:
    assert "flatten-channels-last" not in keys(proved(stack((3, 4), L.Flatten(), L.Dense(2))))


@pytest.mark.parametrize("layers", [
    lambda: [L.Reshape((4, 6))], lambda: [L.Permute((2, 1))],
    lambda: [L.Reshape((2, 3, 4)), CONV(), L.Reshape((24, 1))],
    lambda: [L.Reshape((2, 3, 4)), CONV(), L.Permute((3, 1, 2)), L.Flatten()]])
def test_reshape_and_permute(layers: Callable[[], list[keras.Layer]]) -> None:
    proved(stack((6, 4), *layers()))


@pytest.mark.parametrize("kw", [
    {"strides": 2, "padding": "same"}, {"dilation_rate": 2, "padding": "same"},
    {"groups": 2}, {"padding": "causal", "dilation_rate": 2}, {"strides": 3},
    {"use_bias": False, "padding": "same", "kernel_size": 4}], ids=repr)
def test_conv1d(kw: dict[str, Any]) -> None:
    kw = {"kernel_size": 3, **kw}
    proved(stack((9, 4), L.Conv1D(6, **kw)))


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kw", [
    {"strides": 2, "padding": "same"}, {"strides": 2, "padding": "same", "kernel_size": 4},
    {"dilation_rate": 2, "padding": "same"}, {"groups": 2}, {"strides": 2},
    {"use_bias": False, "padding": "same", "kernel_size": 2},
    {"strides": (1, 2), "padding": "same", "kernel_size": (3, 1)}], ids=repr)
def test_conv2d(size: int, kw: dict[str, Any]) -> None:
    kw = {"kernel_size": 3, **kw}
    p = proved(stack((size, size + 1, 4), L.Conv2D(6, **kw)))
    assert ("same-padding-stride" in keys(p)) == (
        kw.get("padding") == "same" and kw.get("strides", 1) != 1)


@pytest.mark.parametrize("kw", [{"depth_multiplier": 2}, {"strides": 2, "padding": "same"},
                                {"depth_multiplier": 3, "padding": "same", "use_bias": False}],
                         ids=repr)
def test_depthwise_conv2d(kw: dict[str, Any]) -> None:
    proved(stack((7, 7, 3), L.DepthwiseConv2D(3, **kw)))


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("layer", [
    lambda: L.MaxPooling2D(), lambda: L.MaxPooling2D(padding="same"),
    lambda: L.MaxPooling2D(3, strides=2, padding="same"), lambda: L.AveragePooling2D(2),
    lambda: L.AveragePooling2D(2, padding="same"),
    lambda: L.AveragePooling2D(3, strides=2, padding="same"),
    lambda: L.AveragePooling2D(3, strides=1, padding="same")])
def test_pooling2d(size: int, layer: Callable[[], keras.Layer]) -> None:
    proved(stack((size, size, 3), layer()))


@pytest.mark.parametrize("layer", [L.MaxPooling1D(2, padding="same"), L.AveragePooling1D(3, 2),
                                   L.AveragePooling1D(2, padding="same")], ids=repr)
def test_pooling1d(layer: keras.Layer) -> None:
    proved(stack((7, 3), layer))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", [L.GlobalAveragePooling2D, L.GlobalMaxPooling2D])
def test_global_pooling2d(kind: type, keepdims: bool) -> None:
    proved(stack((5, 6, 3), CONV(), kind(keepdims=keepdims)))


@pytest.mark.parametrize("kind", [L.GlobalAveragePooling1D, L.GlobalMaxPooling1D])
def test_global_pooling1d(kind: type) -> None:
    proved(stack((5, 3), kind()))


def test_zero_padding() -> None:
    proved(stack((5, 6, 3), L.ZeroPadding2D(((1, 2), (3, 0))), CONV()))
    proved(stack((5, 3), L.ZeroPadding1D((2, 1)), L.Conv1D(2, 3)))


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9, "epsilon": 1e-2}, {"center": False},
                                {"scale": False}, {"center": False, "scale": False}], ids=repr)
@pytest.mark.parametrize("shape", [(6,), (4, 6), (4, 5, 6)])
def test_batch_normalization(kw: dict[str, Any], shape: tuple[int, ...]) -> None:
    p = proved(stack(shape, L.BatchNormalization(**kw)))
    assert "bn-momentum-epsilon" in keys(p)
    eps = kw.get("epsilon", 1e-3)
    assert f"eps={eps!r}" in p.source
    assert f"momentum={round(1 - kw.get('momentum', 0.99), 10)!r}" in p.source


@pytest.mark.parametrize("kw", [{}, {"center": False}, {"scale": False}, {"epsilon": 1e-6},
                                {"center": False, "scale": False}], ids=repr)
def test_layer_normalization(kw: dict[str, Any]) -> None:
    proved(stack((4, 6), L.LayerNormalization(**kw)))


@pytest.mark.parametrize("merge", [L.Add, L.Multiply, L.Subtract, L.Average, L.Maximum,
                                   L.Minimum, L.Concatenate])
@pytest.mark.parametrize("conv", [False, True])
def test_merges(merge: type, conv: bool) -> None:
    a, b = keras.Input((5, 5, 3), name="a"), keras.Input((5, 5, 3), name="b")
    x, y = (CONV()(a), CONV()(b)) if conv else (a, b)
    model = randomize(keras.Model([a, b], merge()([x, y])))
    proved(model)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concatenate_on_an_axis_of_a_conv_output(axis: int) -> None:
    a = keras.Input((4, 5, 3))
    model = randomize(keras.Model(a, L.Concatenate(axis=axis)([CONV()(a), CONV()(a)])))
    proved(model)


def test_embedding_into_lstm() -> None:
    proved(stack((6,), L.Embedding(20, 4), L.LSTM(5), dtype="int32"))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("layer", [
    lambda **kw: L.LSTM(5, **kw), lambda **kw: L.LSTM(5, use_bias=False, **kw),
    lambda **kw: L.GRU(5, **kw), lambda **kw: L.GRU(5, reset_after=False, **kw),
    lambda **kw: L.GRU(5, use_bias=False, **kw), lambda **kw: L.SimpleRNN(5, **kw)])
def test_recurrent(layer: Callable[..., keras.Layer], return_sequences: bool) -> None:
    rnn = layer(return_sequences=return_sequences)
    p = proved(stack((7, 3), rnn))
    if isinstance(rnn, L.GRU) and not rnn.reset_after:
        assert "gru-reset-after" in keys(p) and "class GRUResetBefore" in p.source
    if isinstance(rnn, L.LSTM) and rnn.use_bias:
        assert "lstm-bias" in keys(p)


@pytest.mark.parametrize("layer", [L.UpSampling2D(), L.UpSampling2D((2, 3), interpolation="bilinear")],
                         ids=repr)
def test_upsampling(layer: keras.Layer) -> None:
    proved(stack((4, 5, 2), layer, CONV()))


@pytest.mark.parametrize("kw", [{"strides": 2, "padding": "same"}, {"padding": "same"},
                                {"strides": 2}], ids=repr)
def test_conv3d(kw: dict[str, Any]) -> None:
    proved(stack((5, 6, 7, 2), L.Conv3D(3, 3, **kw), L.BatchNormalization()))


@pytest.mark.parametrize("kw", [
    {"depth_multiplier": 2}, {"strides": 2, "padding": "same", "depth_multiplier": 2},
    {"dilation_rate": 2, "padding": "same", "use_bias": False}, {"activation": "relu"}], ids=repr)
def test_separable_conv2d(kw: dict[str, Any]) -> None:
    p = proved(stack((8, 7, 3), L.SeparableConv2D(5, 3, **kw)))
    assert "depthwise.weight" in next(iter(p.state_dict))


def test_separable_conv1d() -> None:
    proved(stack((9, 3), L.SeparableConv1D(4, 3, strides=2, padding="same", depth_multiplier=2)))


@pytest.mark.parametrize("size", [4, 5])
@pytest.mark.parametrize("kw", [
    {"kernel_size": 3, "strides": 2, "padding": "same"},
    {"kernel_size": 4, "strides": 2, "padding": "same"},
    {"kernel_size": 3, "strides": 1, "padding": "same"},
    {"kernel_size": 3, "strides": 2}, {"kernel_size": 2, "strides": 3},
    {"kernel_size": (3, 5), "strides": (2, 3), "padding": "same", "use_bias": False}], ids=repr)
def test_conv2d_transpose(size: int, kw: dict[str, Any]) -> None:
    p = proved(stack((size, size + 1, 2), L.Conv2DTranspose(3, **kw)))
    k, s = kw["kernel_size"], kw["strides"]
    odd = kw.get("padding") == "same" and any(
        (kk - ss) % 2 for kk, ss in zip(*(v if isinstance(v, tuple) else (v, v) for v in (k, s)), strict=True))
    assert ("transpose-same-crop" in keys(p)) == odd


def test_conv1d_transpose() -> None:
    proved(stack((6, 2), L.Conv1DTranspose(3, 3, strides=2, padding="same", activation="tanh")))


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("rnn", [L.LSTM, L.GRU, L.SimpleRNN])
def test_bidirectional(rnn: type, return_sequences: bool) -> None:
    p = proved(stack((6, 3), L.Bidirectional(rnn(4, return_sequences=return_sequences))))
    assert "bidirectional=True" in p.source
    assert any(k.endswith("_reverse") for k in p.state_dict)


def test_bidirectional_gru_without_reset_after_loops_over_its_own_cell() -> None:
    p = proved(stack((6, 3), L.Bidirectional(L.GRU(4, reset_after=False))))
    assert "= Bidirectional(" in p.source and "Recurrent(GRUResetBeforeCell(3, 4)" in p.source


def attention_model(call: Callable[[keras.Layer, Any, Any], Any], **kw: Any) -> keras.Model:
    q, v = keras.Input((5, 8), name="q"), keras.Input((7, 8), name="v")
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha", **kw)
    return randomize(keras.Model([q, v], call(mha, q, v)))


@pytest.mark.parametrize("call", [
    lambda mha, q, v: mha(q, q), lambda mha, q, v: mha(q, v),
    lambda mha, q, v: mha(q, v, key=L.Dense(8)(v)), lambda mha, q, v: mha(q, v, L.Dense(8)(v))],
    ids=["self", "cross", "key-keyword", "key-positional"])
def test_multi_head_attention(call: Callable[..., Any]) -> None:
    p = proved(attention_model(call))
    assert "nn.MultiheadAttention(8, 2, batch_first=True)" in p.source
    assert p.state_dict["mha.in_proj_weight"].shape == (24, 8)


@pytest.mark.parametrize("call,kw", [
    (lambda mha, q, v: mha(q, q, use_causal_mask=True), {}),
    (lambda mha, q, v: mha(q, v), {"value_dim": 3}),
    (lambda mha, q, v: mha(q, v), {"use_bias": False})], ids=["causal", "value_dim", "no-bias"])
def test_attention_beyond_the_plain_case_is_proved(call: Callable[..., Any], kw: dict[str, Any]) -> None:
    p = proved(attention_model(call, **kw))
    assert p.unsupported == []


@pytest.mark.parametrize("layers", [
    lambda: [L.Conv1D(5, 3), L.Dense(4)], lambda: [L.Conv1D(5, 3), L.LSTM(3)],
    lambda: [L.Conv1D(5, 3), L.LayerNormalization(), L.Conv1D(2, 1)],
    lambda: [L.Conv1D(5, 3), L.BatchNormalization(), L.GlobalMaxPooling1D()]])
def test_layouts_meet_between_conv_and_sequence_layers(layers: Callable[[], list[keras.Layer]]) -> None:
    proved(stack((9, 4), *layers()))


def test_free_spatial_sizes_are_proved_on_a_drawn_size() -> None:
    proved(stack((None, None, 3), L.Conv2D(4, 3, strides=2, padding="same"),
                 L.GlobalAveragePooling2D()))


@pytest.mark.parametrize("layer", [
    lambda: L.Rescaling(1 / 127.5, offset=-1.0), lambda: L.Rescaling(2.0),
    lambda: L.Normalization(mean=[0.5, 1.0, -1.0], variance=[4.0, 0.25, 1.0]),
    lambda: L.Normalization(axis=None, mean=2.0, variance=9.0)])
def test_preprocessing_inside_the_model(layer: Callable[[], keras.Layer]) -> None:
    proved(stack((5, 5, 3), layer(), CONV()))


def test_an_adapted_normalization_carries_its_statistics() -> None:
    norm = L.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, (64, 4)).astype("float32"))
    inp = keras.Input((4,))
    p = proved(keras.Model(inp, L.Dense(2)(norm(inp))))
    assert abs(float(p.state_dict["norm.mean"].mean()) - 3.0) < 0.6


def test_time_distributed_dense_is_a_linear() -> None:
    p = proved(stack((5, 3), L.TimeDistributed(L.Dense(4, activation="relu"))))
    assert "nn.Linear(3, 4)" in p.source


def test_cropping() -> None:
    proved(stack((7, 8, 2), L.Cropping2D(((1, 2), (0, 3))), CONV()))
    proved(stack((7, 2), L.Cropping1D((2, 1)), L.Conv1D(3, 2)))


def test_prelu_with_one_slope_per_channel() -> None:
    proved(stack((5, 5, 2), CONV(), L.PReLU(shared_axes=[1, 2])))
    proved(stack((6,), L.Dense(4), L.PReLU()))
    assert port(stack((5, 3), L.PReLU())).unsupported  # a slope per element: not nn.PReLU


@pytest.mark.parametrize("index", [lambda t: t[:, 0], lambda t: t[:, 1:4, ::2],
                                   lambda t: t[..., None, 2], lambda t: t[:, -1]], ids=repr)
def test_constant_indexing_is_written_inline(index: Callable[[Any], Any]) -> None:
    x = keras.Input((6, 8), name="x")
    model = randomize(keras.Model(x, L.Dense(3, name="head")(index(L.Dense(8, name="body")(x)))))
    p = proved(model)
    assert p.unsupported == [] and "[" in p.source.split("def forward")[-1]


@pytest.mark.parametrize("layer", [L.Identity(), L.ActivityRegularization(l1=0.1)], ids=repr)
def test_layers_that_pass_their_input_through(layer: keras.Layer) -> None:
    proved(stack((5, 5, 2), CONV(), layer, L.Flatten()))
