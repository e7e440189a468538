"""One converter per Keras layer kind, looked up by class name; anything else is a stub."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..converted import Converted, Site, repeat
from . import (
    activations,
    attention,
    conv,
    core,
    merge,
    norm,
    pooling,
    preprocessing,
    recurrent,
    shape,
    transpose,
)

KERAS_LAYERS = ("keras.src.layers.", "keras.src.applications.")  # where Keras defines layers
Converter = Callable[[Any, Site], Converted | None]
# The layers whose converters honour a Keras mask passed to them (`mask=`); any other
# that is handed one is a stub rather than a port that ignores it.
READS_MASK = frozenset({"LSTM", "GRU", "SimpleRNN", "Bidirectional", "GlobalAveragePooling1D",
                        "Attention", "AdditiveAttention",
                        "TimeDistributed"})

REGISTRY: dict[str, Converter] = {}
for _family in (activations, attention, conv, core, merge, norm, pooling, preprocessing,
                recurrent, shape, transpose):
    REGISTRY.update(_family.CONVERTERS)


def config_text(layer: Any) -> str:
    try:
        config = layer.get_config()
    except Exception:  # a custom layer's get_config may itself be unimplemented
        return "{}"
    return json.dumps(config, default=repr, sort_keys=True)[:2000]


def reason(layer: Any, site: Site) -> str:
    """Why a layer is a stub, in a few words for the one who writes it."""
    kind = type(layer).__name__
    if getattr(layer, "stateful", False) or getattr(getattr(layer, "forward_layer", None),
                                                    "stateful", False):
        return ("stateful=True carries the state from one batch to the next; torch's "
                "recurrent modules keep none: pass it in and out yourself")
    if kind == "Lambda":
        return "a Lambda's Python function is not read (Keras's safe_mode does not load it)"
    if not type(layer).__module__.startswith(KERAS_LAYERS):
        return "a custom layer's call() is Python the porter does not read"
    if "mask" in site.roles and kind not in READS_MASK:
        return "it is handed a Keras mask, which changes what it computes"
    if kind not in REGISTRY:
        return "no converter for this layer"
    return "a setting torch's module cannot express (see the config)"


def stub(layer: Any, site: Site) -> Converted:
    source = (f"KerasStub({str(layer.name)!r}, {type(layer).__name__!r}, "
              f"{config_text(layer)!r}, {reason(layer, site)!r})")
    wants = repeat("cl", len(site.in_shapes))
    return Converted(source, wants, "cl", helpers=("KerasStub",),
                     stub=True)


def convert(layer: Any, site: Site) -> Converted:
    converter = REGISTRY.get(type(layer).__name__)
    # Only Keras's own layers: a subclass of Dense may override call(), and keras.ops
    # has operations of the same names (`x + y` in a graph is an ops.numpy.Add).
    if converter is None or not type(layer).__module__.startswith(KERAS_LAYERS):
        return stub(layer, site)
    if "mask" in site.roles and type(layer).__name__ not in READS_MASK:
        return stub(layer, site)
    converted = converter(layer, site)
    return converted if converted is not None else stub(layer, site)
