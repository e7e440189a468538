"""Convolutions, pooling, padding, cropping and resizing beyond the 2D channels-last case:
channels_first data (the tensor is already as torch wants it), 3D, and 1D."""

from __future__ import annotations

from typing import Any

import keras
import pytest

from sandbox.porter import port
from tests.test_porter_layers import proved, stack

L = keras.layers
# Keras on TensorFlow's CPU kernels: without oneDNN (as the sandbox runs it) channels_first
# Conv1D/Conv2D/Conv2DTranspose are refused; with oneDNN (as here) some shapes come out
# unlike the same layer channels last ((4, 5, 6) inputs, strided Conv3D). The shapes
# below are ones where Keras agrees with itself.
CF = {"data_format": "channels_first"}


@pytest.mark.parametrize("layer", [
    lambda: L.Conv2D(4, 3, padding="same", strides=2, **CF),
    lambda: L.Conv2D(4, 3, dilation_rate=2, activation="softmax", **CF),
    lambda: L.Conv2D(6, 3, groups=3, padding="same", **CF),
    lambda: L.DepthwiseConv2D(3, depth_multiplier=2, **CF),
    lambda: L.SeparableConv2D(4, 3, padding="same", **CF),
    lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", **CF),
    lambda: L.MaxPooling2D(**CF), lambda: L.AveragePooling2D(3, 2, padding="same", **CF),
    lambda: L.MaxPooling2D(3, 2, padding="same", **CF),
    lambda: L.ZeroPadding2D(((1, 2), (0, 3)), **CF), lambda: L.Cropping2D(((1, 0), (2, 1)), **CF),
    lambda: L.UpSampling2D((2, 3), interpolation="bilinear", **CF),
    lambda: L.UpSampling2D(2, **CF), lambda: L.SpatialDropout2D(0.3, **CF),
    lambda: L.BatchNormalization(axis=1)])
@pytest.mark.parametrize("then", ["flatten", "pool"])
def test_channels_first_2d(layer: Any, then: str) -> None:
    last = L.Flatten() if then == "flatten" else L.GlobalAveragePooling2D(**CF)
    p = proved(stack((3, 8, 9), layer(), last, L.Dense(2)))
    assert ".permute(" not in p.source  # the data is already channels first


@pytest.mark.parametrize("layer", [
    lambda: L.Conv1D(4, 3, padding="same", strides=2, **CF), lambda: L.MaxPooling1D(2, **CF),
    lambda: L.AveragePooling1D(2, padding="same", **CF), lambda: L.GlobalMaxPooling1D(**CF)])
def test_channels_first_1d(layer: Any) -> None:
    proved(stack((3, 9), layer()))


def test_channels_first_meets_channels_last() -> None:
    p = proved(stack((3, 8, 9), L.Conv2D(4, 3, **CF), L.Conv2D(5, 3, padding="same"),
                     L.Conv2D(2, 1, **CF)))
    assert ".permute(" in p.source


@pytest.mark.parametrize("kw", [
    {"strides": 2, "padding": "same"}, {"dilation_rate": 2, "padding": "same"},
    {"groups": 2}, {"strides": (1, 2, 3), "kernel_size": (2, 3, 1)},
    {"use_bias": False, "padding": "same", "kernel_size": 2}], ids=repr)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv3d(kw: dict[str, Any], data_format: str) -> None:
    if data_format == "channels_first" and kw.get("strides") == 2:
        # TensorFlow's CPU kernel gives this case a result no padding of the input
        # explains, unlike the same layer channels last: nothing to port to.
        pytest.skip("Keras's own result is inconsistent here")
    kw = {"kernel_size": 3, **kw}
    shape = (5, 6, 7, 2) if data_format == "channels_last" else (2, 5, 6, 7)
    proved(stack(shape, L.Conv3D(4, data_format=data_format, **kw)))


@pytest.mark.parametrize("layer", [
    lambda **kw: L.MaxPooling3D(**kw), lambda **kw: L.AveragePooling3D(2, **kw),
    lambda **kw: L.MaxPooling3D(3, 2, padding="same", **kw),
    lambda **kw: L.AveragePooling3D(3, 2, padding="same", **kw),
    lambda **kw: L.AveragePooling3D(3, 1, padding="same", **kw),
    lambda **kw: L.MaxPooling3D((2, 1, 3), padding="same", **kw),
    lambda **kw: L.GlobalAveragePooling3D(**kw), lambda **kw: L.GlobalMaxPooling3D(keepdims=True, **kw),
    lambda **kw: L.ZeroPadding3D(((1, 0), (2, 1), (0, 3)), **kw),
    lambda **kw: L.Cropping3D(((1, 0), (2, 1), (0, 3)), **kw),
    lambda **kw: L.UpSampling3D((2, 1, 2), **kw)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_padding_and_upsampling_3d(layer: Any, data_format: str) -> None:
    shape = (5, 6, 7, 2) if data_format == "channels_last" else (2, 5, 6, 7)
    proved(stack(shape, layer(data_format=data_format)))


@pytest.mark.parametrize("layer", [lambda: L.ZeroPadding1D(2), lambda: L.ZeroPadding1D((0, 3)),
                                   lambda: L.Cropping1D((1, 2)), lambda: L.UpSampling1D(3)])
def test_padding_cropping_and_upsampling_1d(layer: Any) -> None:
    proved(stack((7, 3), L.Conv1D(4, 3), layer(), L.Conv1D(2, 2)))


def test_conv1d_transpose_and_depthwise_conv1d() -> None:
    proved(stack((6, 2), L.Conv1DTranspose(3, 4, strides=2), L.DepthwiseConv1D(3, depth_multiplier=2)))


def test_bilinear_upsampling_of_a_conv_output() -> None:
    p = proved(stack((4, 5, 2), L.Conv2D(3, 1), L.UpSampling2D((3, 2), interpolation="bilinear")))
    assert "mode='bilinear'" in p.source and "align_corners=False" in p.source


def test_an_interpolation_torch_lacks_is_a_stub() -> None:
    p = port(stack((4, 5, 2), L.UpSampling2D(2, interpolation="bicubic")))
    assert [lp.class_name for lp in p.unsupported] == ["UpSampling2D"]


@pytest.mark.parametrize("size", [4, 5])
@pytest.mark.parametrize("kw", [
    {"kernel_size": 3, "strides": 2, "output_padding": 1},
    {"kernel_size": 3, "strides": 2, "output_padding": 1, "padding": "same"},
    {"kernel_size": 4, "strides": 3, "output_padding": 2, "padding": "same"},
    {"kernel_size": 1, "strides": 2, "output_padding": 1, "padding": "same"},
    {"kernel_size": (3, 4), "strides": (2, 3), "output_padding": (0, 2)}], ids=repr)
def test_conv2d_transpose_with_output_padding(size: int, kw: dict[str, Any]) -> None:
    proved(stack((size, size + 1, 2), L.Conv2DTranspose(3, **kw)))


@pytest.mark.parametrize("kw", [{"strides": 2, "padding": "same"}, {"strides": 2},
                                {"strides": 2, "output_padding": 1}], ids=repr)
def test_conv1d_and_conv3d_transpose(kw: dict[str, Any]) -> None:
    proved(stack((5, 2), L.Conv1DTranspose(3, 3, **kw)))
    proved(stack((3, 4, 5, 2), L.Conv3DTranspose(3, 3, **kw)))


@pytest.mark.parametrize("kw", [{"groups": 2}, {"groups": 4, "epsilon": 1e-5},
                                {"groups": 1, "center": False}, {"groups": 2, "scale": False},
                                {"groups": 2, "center": False, "scale": False}], ids=repr)
@pytest.mark.parametrize("shape", [(4,), (5, 4), (5, 6, 4)])
def test_group_normalization(kw: dict[str, Any], shape: tuple[int, ...]) -> None:
    p = proved(stack(shape, L.Dense(4), L.GroupNormalization(**kw)))
    assert "nn.GroupNorm(" in p.source


def test_group_normalization_of_channels_first_data() -> None:
    proved(stack((4, 8, 9), L.Conv2D(4, 3, data_format="channels_first"),
                 L.GroupNormalization(2, axis=1)))


@pytest.mark.parametrize("axis", [-1, [2, 3], (-2, -1), (1, 2, 3)], ids=repr)
def test_layer_normalization_over_trailing_axes(axis: Any) -> None:
    p = proved(stack((3, 4, 6), L.LayerNormalization(axis=axis, epsilon=1e-6)))
    assert "nn.LayerNorm(" in p.source


def test_layer_normalization_over_a_middle_axis_is_a_stub() -> None:
    assert port(stack((3, 4, 6), L.LayerNormalization(axis=[1, 2]))).unsupported


def test_repeat_vector() -> None:
    p = proved(stack((5,), L.Dense(3), L.RepeatVector(4), L.LSTM(2, return_sequences=True)))
    assert "RepeatVector(4)" in p.source
