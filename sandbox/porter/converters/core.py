"""Dense, Embedding and the layers that do nothing at inference."""

from __future__ import annotations

import re
from typing import Any

from ..converted import Converted, Site, Trap
from ._util import array, held, kernel_trap
from .activations import fused


def dense(layer: Any, site: Site) -> Converted | None:
    act = fused(layer, site.rank, "cl")
    if act is None or getattr(layer, "quantization_mode", None):
        return None
    post, traps = act
    kernel = array(layer.kernel)
    weights = {"weight": kernel.T.copy()}
    if layer.use_bias:
        weights["bias"] = array(layer.bias)
    bias = "" if layer.use_bias else ", bias=False"
    return Converted(f"nn.Linear({kernel.shape[0]}, {kernel.shape[1]}{bias})", ("cl",), "cl",
                     weights, post=post,
                     traps=[kernel_trap("(in, out)", "weight (out, in): transposed"), *traps])


def dropout(layer: Any, site: Site) -> Converted:
    layout = site.in_layouts[0]
    return Converted(f"nn.Dropout(p={float(layer.rate)!r})", (layout,), layout)


def spatial_dropout(layer: Any, site: Site) -> Converted:
    rank = site.rank
    module = {3: "nn.Dropout1d", 4: "nn.Dropout2d", 5: "nn.Dropout3d"}[rank]
    lay = held(layer)
    return Converted(f"{module}(p={float(layer.rate)!r})", (lay,), lay)


def noise(layer: Any, site: Site) -> Converted:
    layout = site.in_layouts[0]
    trap = Trap("inference-noop", f"Keras {type(layer).__name__} only acts in training")
    return Converted("nn.Identity()", (layout,), layout, traps=[trap])


def identity(layer: Any, site: Site) -> Converted:
    layout = site.in_layouts[0]
    return Converted("nn.Identity()", (layout,), layout)


def embedding(layer: Any, site: Site) -> Converted | None:
    # mask_zero's mask is a separate `ids != 0` in the graph, written in forward.
    if getattr(layer, "quantization_mode", None):
        return None
    table = array(layer.embeddings)
    return Converted(f"nn.Embedding({table.shape[0]}, {table.shape[1]})", ("cl",), "cl",
                     {"weight": table})


def masking(layer: Any, site: Site) -> Converted:
    return Converted(f"Masking({float(layer.mask_value)!r})", ("cl",), "cl",
                     helpers=("Masking",))


def layer_scale(layer: Any, site: Site) -> Converted:
    gamma = array(layer.gamma)
    return Converted(f"LayerScale({gamma.shape[0]})", ("cl",), "cl", {"gamma": gamma},
                     helpers=("LayerScale",))


def time_distributed(layer: Any, site: Site) -> Converted | None:
    """TimeDistributed(Dense) is a Dense: nn.Linear maps the last axis of any rank. Any
    other inner layer the porter converts to one module call (with at most an elementwise
    activation after it) runs on the steps folded into the batch."""
    from . import KERAS_LAYERS, REGISTRY  # the registry holds this module's converters

    inner = layer.layer
    kind = type(inner).__name__
    if not type(inner).__module__.startswith(KERAS_LAYERS) or kind not in REGISTRY:
        return None
    if kind == "Dense":
        return dense(inner, site)
    steps = Site(("cl",), tuple((s[0], *s[2:]) for s in site.in_shapes),
                 tuple((s[0], *s[2:]) for s in site.out_shapes), ("0",))
    done = REGISTRY[kind](inner, steps)
    elementwise = done is not None and (done.post == "{y}" or (
        re.fullmatch(r"(F|torch)\.\w+\(\{y\}[^\[\]{}]*\)", done.post) is not None
        and "dim" not in done.post))  # an activation, the same on any layout
    if (done is None or done.stub or done.inline or "mask" in site.roles
            or done.call not in ("{m}({args})", "{m}({x0})") or len(done.wants) != 1
            or not elementwise or (done.wants[0], done.out) == ("cl", "cf")):
        return None
    channels_first = ", channels_first=True" if done.wants[0] == "cf" and site.rank > 3 else ""
    return Converted(f"TimeDistributed({done.module}{channels_first})", ("cl",), "cl",
                     {f"layer.{k}": v for k, v in done.weights.items()}, post=done.post,
                     traps=done.traps, helpers=("TimeDistributed", *done.helpers))


CONVERTERS = {
    "Dense": dense, "TimeDistributed": time_distributed, "Dropout": dropout,
    "SpatialDropout1D": spatial_dropout, "SpatialDropout2D": spatial_dropout,
    "SpatialDropout3D": spatial_dropout,
    "GaussianNoise": noise, "GaussianDropout": noise, "AlphaDropout": noise,
    "ActivityRegularization": noise, "Identity": identity,
    "Embedding": embedding, "LayerScale": layer_scale, "Masking": masking,
}
