"""Conv1DTranspose, Conv2DTranspose and Conv3DTranspose."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap
from ._util import array, channels_last, held, kernel_trap, size
from .activations import fused


def from_lengths(layer: Any, site: Site, kernel: tuple[int, ...], stride: tuple[int, ...]
                 ) -> tuple[list[int], list[int], list[int]] | None:
    """(padding, output_padding, crop at the end) per axis that give Keras's output length
    L: TF takes L cells of the full transposed output ((in - 1) * s + k) from
    (full - L) // 2 on for "same", from 0 for "valid", zeros past the end."""
    first = 1 if channels_last(layer) else 2
    ins = site.in_shapes[0][first:first + len(kernel)]
    outs = site.out_shapes[0][first:first + len(kernel)]
    if None in ins or None in outs:
        return None
    pad, extra, crop = [], [], []
    for size_in, size_out, k, s in zip(ins, outs, kernel, stride, strict=True):
        length, full = int(size_out or 0), (int(size_in or 0) - 1) * s + k
        start = max(full - length, 0) // 2 if layer.padding == "same" else 0
        got = full - 2 * start  # nn.ConvTranspose's length at padding=start
        if not (0 <= length - got < s or got - length == 1):
            return None
        pad.append(start)
        extra.append(max(length - got, 0))
        crop.append(max(got - length, 0))
    return pad, extra, crop


def conv_transpose(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    lay = held(layer)
    act = fused(layer, site.rank, lay)
    if act is None or any(d != 1 for d in layer.dilation_rate):
        return None
    post, act_traps = act
    kernel, stride = tuple(layer.kernel_size), tuple(layer.strides)
    if layer.output_padding is not None:
        found = from_lengths(layer, site, kernel, stride)
        if found is None:
            return None
        pad, extra, crop = found
    elif layer.padding == "valid":  # (in - 1) * s + k, or in * s when k < s
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


CONVERTERS = {"Conv1DTranspose": conv_transpose, "Conv2DTranspose": conv_transpose,
              "Conv3DTranspose": conv_transpose}
