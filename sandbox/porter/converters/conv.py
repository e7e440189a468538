"""Convolutions: Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D, Conv2DTranspose."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap
from ._util import array, channels, held, kernel_trap, size
from .activations import fused

SAME_STRIDE = Trap("same-padding-stride", "TF's \"same\" at stride > 1 pads the odd pixel at "
                   "the end: by hand", "forward")
SAME_EVEN = Trap("same-padding-even-kernel", "an even kernel's \"same\" pads the odd pixel "
                 "at the end: by hand", "forward")


def padding(layer: Any, n: int) -> tuple[str, str, list[Trap]] | None:
    """(padding argument, input expression on {x0}, traps) for a conv's `padding`."""
    kernel, stride = tuple(layer.kernel_size), tuple(layer.strides)
    dilation = tuple(layer.dilation_rate)
    if layer.padding == "valid":
        return "0", "{x0}", []
    if layer.padding == "same":
        reach = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if all(s == 1 for s in stride) and all(r % 2 == 0 for r in reach):
            return '"same"', "{x0}", []
        trap = SAME_STRIDE if any(s != 1 for s in stride) else SAME_EVEN
        return ("0", f"F.pad({{x0}}, tf_same_pad({{x0}}, {kernel!r}, {stride!r}, {dilation!r}))",
                [trap])
    if layer.padding == "causal" and n == 1:
        left = dilation[0] * (kernel[0] - 1)
        return "0", f"F.pad({{x0}}, ({left}, 0))", [
            Trap("causal-padding", f"causal: {left} zeros on the left only", "forward")]
    return None


def torch_kernel(kernel: np.ndarray) -> np.ndarray:
    """(k..., in, out) -> (out, in, k...)."""
    n = kernel.ndim - 2
    return np.ascontiguousarray(kernel.transpose(n + 1, n, *range(n)))


def depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """(k..., in, m) -> (in * m, 1, k...): output channel c * m + j is filter j of channel c."""
    n = kernel.ndim - 2
    c, m = kernel.shape[-2:]
    moved = kernel.transpose(n, n + 1, *range(n)).reshape(c * m, 1, *kernel.shape[:n])
    return np.ascontiguousarray(moved)


def conv(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    pad = padding(layer, n)
    lay = held(layer)
    act = fused(layer, site.rank, lay)
    if pad is None or act is None:
        return None
    arg, source, pad_traps = pad
    post, act_traps = act
    depthwise = type(layer).__name__.startswith("Depthwise")
    if depthwise:
        weight = depthwise_kernel(array(layer.kernel))
        c_in = groups = channels(layer, site)
        trap = kernel_trap("(k..., in, mult)", "(in * mult, 1, k...), groups=in")
    else:
        weight = torch_kernel(array(layer.kernel))
        groups = getattr(layer, "groups", 1)
        c_in = weight.shape[1] * groups
        trap = kernel_trap("(k..., in, out)", "(out, in, k...)")
    weights = {"weight": weight}
    if layer.use_bias:
        weights["bias"] = array(layer.bias)
    args = [str(c_in), str(weight.shape[0]), size(layer.kernel_size)]
    if any(s != 1 for s in layer.strides):
        args.append(f"stride={size(layer.strides)}")
    if arg != "0" and any(k != 1 for k in layer.kernel_size):
        args.append(f"padding={arg}")
    if any(d != 1 for d in layer.dilation_rate):
        args.append(f"dilation={size(layer.dilation_rate)}")
    if groups != 1:
        args.append(f"groups={groups}")
    if not layer.use_bias:
        args.append("bias=False")
    return Converted(f"nn.Conv{n}d({', '.join(args)})", (lay,), lay, weights,
                     call=f"{{m}}({source})", post=post, traps=[trap, *pad_traps, *act_traps],
                     helpers=("tf_same_pad",) if "tf_same_pad" in source else ())


def separable(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    pad = padding(layer, n)
    lay = held(layer)
    act = fused(layer, site.rank, lay)
    if pad is None or act is None:
        return None
    arg, source, pad_traps = pad
    post, act_traps = act
    depthwise = depthwise_kernel(array(layer.depthwise_kernel))
    pointwise = torch_kernel(array(layer.pointwise_kernel))
    c_in, mid, out = channels(layer, site), depthwise.shape[0], pointwise.shape[0]
    dw = [str(c_in), str(mid), size(layer.kernel_size)]
    if any(s != 1 for s in layer.strides):
        dw.append(f"stride={size(layer.strides)}")
    if arg != "0":
        dw.append(f"padding={arg}")
    if any(d != 1 for d in layer.dilation_rate):
        dw.append(f"dilation={size(layer.dilation_rate)}")
    dw += [f"groups={c_in}", "bias=False"]
    pw = f"{mid}, {out}, 1" + ("" if layer.use_bias else ", bias=False")
    weights = {"depthwise.weight": depthwise, "pointwise.weight": pointwise}
    if layer.use_bias:
        weights["pointwise.bias"] = array(layer.bias)
    trap = kernel_trap("depthwise (k..., in, mult)", "(in * mult, 1, k...), groups=in")
    return Converted(f"SeparableConv(nn.Conv{n}d({', '.join(dw)}), nn.Conv{n}d({pw}))",
                     (lay,), lay, weights, call=f"{{m}}({source})", post=post,
                     traps=[trap, *pad_traps, *act_traps],
                     helpers=("SeparableConv", *(("tf_same_pad",) if "tf_same" in source else ())))


CONVERTERS = {"SeparableConv1D": separable, "SeparableConv2D": separable,
              "Conv1D": conv, "Conv2D": conv, "Conv3D": conv,
              "DepthwiseConv1D": conv, "DepthwiseConv2D": conv}
