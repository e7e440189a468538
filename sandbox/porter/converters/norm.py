"""BatchNormalization, LayerNormalization and GroupNormalization."""

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
    """nn.LayerNorm normalises the trailing axes: Keras's axis must be those."""
    rank = site.rank
    axes = sorted(a % rank for a in ([layer.axis] if isinstance(layer.axis, int) else layer.axis))
    dims = [site.in_shapes[0][a] for a in axes]
    if (axes != list(range(rank - len(axes), rank)) or 0 in axes or None in dims
            or getattr(layer, "rms_scaling", False)):
        return None
    shape = tuple(int(d or 0) for d in dims)
    d = shape[0] if len(shape) == 1 else shape
    eps = float(layer.epsilon)
    weights = {}
    if layer.scale:
        weights["weight"] = array(layer.gamma)
    elif layer.center:
        weights["weight"] = np.ones(shape, np.float32)
    if layer.center:
        weights["bias"] = array(layer.beta)
    args = f"{d}, eps={eps!r}"
    if not (layer.scale or layer.center):
        args += ", elementwise_affine=False"
    elif not layer.center:
        args += ", bias=False"
    trap = Trap("layernorm-epsilon", f"Keras epsilon {eps!r}; torch's default is 1e-5")
    return Converted(f"nn.LayerNorm({args})", ("cl",), "cl", weights, traps=[trap])


def group_norm(layer: Any, site: Site) -> Converted | None:
    """nn.GroupNorm: the same groups of channels, which torch wants on axis 1."""
    rank = site.rank
    if layer.axis % rank not in (1, rank - 1):
        return None
    lay: Layout = "cf" if layer.axis % rank == rank - 1 and rank > 2 else "cl"
    channels = int(site.in_shapes[0][layer.axis] or 0)
    eps = float(layer.epsilon)
    args = f"{int(layer.groups)}, {channels}, eps={eps!r}"
    weights = {}
    if layer.scale or layer.center:
        ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        weights["weight"] = array(layer.gamma) if layer.scale else ones
        weights["bias"] = array(layer.beta) if layer.center else zeros
    else:
        args += ", affine=False"
    trap = Trap("layernorm-epsilon", f"Keras epsilon {eps!r}; torch's default is 1e-5")
    return Converted(f"nn.GroupNorm({args})", (lay,), lay, weights, traps=[trap])


CONVERTERS = {"BatchNormalization": batch_norm, "LayerNormalization": layer_norm,
              "GroupNormalization": group_norm}
