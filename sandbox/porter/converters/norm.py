"""BatchNormalization and LayerNormalization."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Layout, Site, Trap
from ._util import array


def batch_norm(layer: Any, site: Site) -> Converted | None:
    rank = site.rank
    axis = layer.axis if isinstance(layer.axis, int) else None
    # Channels last, or on axis 1 (channels_first data), where torch's BatchNorm looks.
    if axis is None or axis % rank not in (1, rank - 1) or layer.renorm or rank > 5:
        return None
    lay: Layout = "cl" if axis % rank == 1 or rank == 2 else "cf"
    channels = int(site.in_shapes[0][axis] or 0)
    weights = {"running_mean": array(layer.moving_mean),
               "running_var": array(layer.moving_variance)}
    affine = layer.scale or layer.center
    if affine:
        ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        weights["weight"] = array(layer.gamma) if layer.scale else ones
        weights["bias"] = array(layer.beta) if layer.center else zeros
    eps, momentum = float(layer.epsilon), round(1.0 - float(layer.momentum), 10)
    dims = 1 if rank == 2 else rank - 2
    args = f"{channels}, eps={eps!r}, momentum={momentum!r}" + ("" if affine else ", affine=False")
    traps = [Trap("bn-momentum-epsilon", f"epsilon {eps!r} as Keras's (torch: 1e-5); momentum "
                  f"{momentum!r} = 1 - Keras's {float(layer.momentum)!r}")]
    if layer.scale != layer.center:
        traps.append(Trap("bn-center-scale", "Keras has only one of gamma/beta here: the other "
                          "is loaded as its identity value"))
    return Converted(f"nn.BatchNorm{dims}d({args})", (lay,), lay, weights, traps=traps)


def layer_norm(layer: Any, site: Site) -> Converted | None:
    rank = site.rank
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    if [a % rank for a in axes] != [rank - 1] or getattr(layer, "rms_scaling", False):
        return None
    d = int(site.in_shapes[0][-1] or 0)
    eps = float(layer.epsilon)
    weights = {}
    if layer.scale:
        weights["weight"] = array(layer.gamma)
    elif layer.center:
        weights["weight"] = np.ones(d, np.float32)
    if layer.center:
        weights["bias"] = array(layer.beta)
    args = f"{d}, eps={eps!r}"
    if not (layer.scale or layer.center):
        args += ", elementwise_affine=False"
    elif not layer.center:
        args += ", bias=False"
    trap = Trap("layernorm-epsilon", f"Keras epsilon {eps!r}; torch's default is 1e-5")
    return Converted(f"nn.LayerNorm({args})", ("cl",), "cl", weights, traps=[trap])


CONVERTERS = {"BatchNormalization": batch_norm, "LayerNormalization": layer_norm}
