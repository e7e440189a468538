"""Conv1DTranspose and Conv2DTranspose."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap
from ._util import array, held, kernel_trap, size
from .activations import fused


def conv_transpose(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    lay = held(layer)
    act = fused(layer, site.rank, lay)
    if (act is None or layer.output_padding is not None
            or any(d != 1 for d in layer.dilation_rate)):
        return None
    post, act_traps = act
    kernel, stride = tuple(layer.kernel_size), tuple(layer.strides)
    if layer.padding == "valid":  # (in - 1) * s + k, or in * s when k < s
        pad = [0] * n
        extra = [max(s - k, 0) for k, s in zip(kernel, stride, strict=True)]
        crop = [0] * n
    elif all(k >= s for k, s in zip(kernel, stride, strict=True)):
        # TF crops k - s from the full output: half at the start, the odd one at the end.
        pad = [(k - s) // 2 for k, s in zip(kernel, stride, strict=True)]
        extra = [0] * n
        crop = [(k - s) % 2 for k, s in zip(kernel, stride, strict=True)]
    else:
        return None
    weight = np.ascontiguousarray(array(layer.kernel).transpose(n + 1, n, *range(n)))
    args = [str(weight.shape[0]), str(weight.shape[1]), size(kernel)]
    if any(s != 1 for s in stride):
        args.append(f"stride={size(stride)}")
    if any(pad):
        args.append(f"padding={size(pad)}")
    if any(extra):
        args.append(f"output_padding={size(extra)}")
    if not layer.use_bias:
        args.append("bias=False")
    weights = {"weight": weight}
    if layer.use_bias:
        weights["bias"] = array(layer.bias)
    traps = [kernel_trap("(k..., out, in)", "(in, out, k...)")]
    if any(crop):
        index = ", ".join(":-1" if c else ":" for c in crop)
        post = post.replace("{y}", f"{{y}}[:, :, {index}]")
        traps.append(Trap("transpose-same-crop", "TF's \"same\" crops the odd row and column at "
                          "the end: padding alone would shift by a pixel", "forward"))
    return Converted(f"nn.ConvTranspose{n}d({', '.join(args)})", (lay,), lay, weights,
                     post=post, traps=[*traps, *act_traps])


CONVERTERS = {"Conv1DTranspose": conv_transpose, "Conv2DTranspose": conv_transpose}
