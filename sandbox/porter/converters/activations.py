"""Keras activations as torch modules (for Activation layers) and expressions (fused ones)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras

from ..converted import Converted, Site, Trap, channels_first, torch_axis
from ._util import array

# name -> (module source, expression on {y}); {dim} is the torch dim of Keras axis -1.
SIMPLE: dict[str, tuple[str, str]] = {
    "linear": ("nn.Identity()", "{y}"),
    "relu": ("nn.ReLU()", "F.relu({y})"),
    "relu6": ("nn.ReLU6()", "F.relu6({y})"),
    "sigmoid": ("nn.Sigmoid()", "torch.sigmoid({y})"),
    "tanh": ("nn.Tanh()", "torch.tanh({y})"),
    "selu": ("nn.SELU()", "F.selu({y})"),
    "silu": ("nn.SiLU()", "F.silu({y})"),
    "hard_silu": ("nn.Hardswish()", "F.hardswish({y})"),
    "softplus": ("nn.Softplus()", "F.softplus({y})"),
    "softsign": ("nn.Softsign()", "F.softsign({y})"),
    "mish": ("nn.Mish()", "F.mish({y})"),
}

HARD_SIGMOID = Trap("hard-sigmoid", "Keras 3's hard_sigmoid is relu6(x + 3) / 6, as torch's; "
                    "tf.keras 2 used clip(0.2 * x + 0.5, 0, 1)")


def identify(fn: Any) -> tuple[str, dict[str, Any]] | None:
    """The Keras activation's name and its keyword arguments, or None if it is custom."""
    kwargs: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            return None
        kwargs, fn = dict(fn.keywords), fn.func
    name = getattr(fn, "__name__", None)
    if name is None:
        return None
    try:
        known: Callable[..., Any] = keras.activations.get(name)
    except ValueError:
        return None
    return (name, kwargs) if known is fn else None


def torch_activation(fn: Any, rank: int, layout: Any) -> tuple[str, str, list[Trap]] | None:
    """(module source, expression on {y}, traps) for a Keras activation, or None."""
    found = identify(fn)
    if found is None:
        return None
    name, kw = found
    name = {"swish": "silu", "hard_swish": "hard_silu"}.get(name, name)
    if name in SIMPLE:
        return (*SIMPLE[name], [])
    if name == "gelu":
        if kw.get("approximate", False):
            return ('nn.GELU(approximate="tanh")', 'F.gelu({y}, approximate="tanh")', [])
        return "nn.GELU()", "F.gelu({y})", []
    if name in ("softmax", "log_softmax"):
        axis = kw.get("axis", -1)
        if not isinstance(axis, int):
            return None
        dim = torch_axis(axis, rank, layout)
        module = "Softmax" if name == "softmax" else "LogSoftmax"
        return f"nn.{module}(dim={dim})", f"F.{name}({{y}}, dim={dim})", []
    if name == "elu":
        alpha = float(kw.get("alpha", 1.0))
        return f"nn.ELU(alpha={alpha!r})", f"F.elu({{y}}, alpha={alpha!r})", []
    if name == "leaky_relu":
        slope = float(kw.get("negative_slope", 0.2))
        trap = Trap("leaky-relu-slope", f"Keras's slope here is {slope!r}; torch's default is 0.01")
        return (f"nn.LeakyReLU({slope!r})", f"F.leaky_relu({{y}}, {slope!r})", [trap])
    if name == "hard_sigmoid":
        return "nn.Hardsigmoid()", "F.hardsigmoid({y})", [HARD_SIGMOID]
    return None


def fused(layer: Any, rank: int, layout: Any) -> tuple[str, list[Trap]] | None:
    """The expression for a layer's own `activation=` argument."""
    found = torch_activation(layer.activation, rank, layout)
    if found is None:
        return None
    _, expr, traps = found
    return expr, [Trap(t.key, t.text, "forward") for t in traps]


def activation(layer: Any, site: Site) -> Converted | None:
    layout = site.in_layouts[0]
    found = torch_activation(layer.activation, site.rank, layout)
    if found is None:
        return None
    module, _, traps = found
    return Converted(module, (layout,), layout, traps=traps)


def relu(layer: Any, site: Site) -> Converted | None:
    layout = site.in_layouts[0]
    slope = float(layer.negative_slope)
    threshold = float(layer.threshold)
    cap = None if layer.max_value is None else float(layer.max_value)
    if threshold != 0.0 or (slope and cap is not None):
        return None
    if slope:
        module = f"nn.LeakyReLU({slope!r})"
    elif cap is None:
        module = "nn.ReLU()"
    else:
        module = "nn.ReLU6()" if cap == 6.0 else f"nn.Hardtanh(0.0, {cap!r})"
    return Converted(module, (layout,), layout)


def leaky_relu(layer: Any, site: Site) -> Converted:
    layout = site.in_layouts[0]
    slope = float(layer.negative_slope)
    trap = Trap("leaky-relu-slope", f"Keras's LeakyReLU slope here is {slope!r}; "
                "torch's default is 0.01")
    return Converted(f"nn.LeakyReLU({slope!r})", (layout,), layout, traps=[trap])


def elu(layer: Any, site: Site) -> Converted:
    layout = site.in_layouts[0]
    return Converted(f"nn.ELU(alpha={float(layer.alpha)!r})", (layout,), layout)


def softmax(layer: Any, site: Site) -> Converted | None:
    layout = site.in_layouts[0]
    axis = layer.axis
    if not isinstance(axis, int):
        return None
    return Converted(f"nn.Softmax(dim={torch_axis(axis, site.rank, layout)})", (layout,), layout)


def prelu(layer: Any, site: Site) -> Converted | None:
    """nn.PReLU has one slope per channel: Keras's alpha must be shared over the rest."""
    alpha = array(layer.alpha)
    channels = alpha.shape[-1]
    if alpha.size != channels:
        return None
    layout = channels_first(site.in_layouts[0], site.rank)
    return Converted(f"nn.PReLU({channels})", (layout,), layout, {"weight": alpha.reshape(-1)})


CONVERTERS = {"Activation": activation, "PReLU": prelu, "ReLU": relu, "LeakyReLU": leaky_relu,
              "ELU": elu, "Softmax": softmax}
