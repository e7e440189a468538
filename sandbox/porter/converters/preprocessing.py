"""Preprocessing layers that live inside models: Rescaling, Normalization."""

from __future__ import annotations

from typing import Any

import keras

from ..converted import Converted, Site, Trap
from ._util import array


def rescaling(layer: Any, site: Site) -> Converted | None:
    try:
        scale, offset = float(layer.scale), float(layer.offset)
    except TypeError:  # per-channel lists
        return None
    layout = site.in_layouts[0]
    return Converted(f"Rescaling({scale!r}, {offset!r})", (layout,), layout,
                     helpers=("Rescaling",))


def normalization(layer: Any, site: Site) -> Converted | None:
    if layer.invert or layer.mean is None:
        return None
    mean, variance = array(layer.mean), array(layer.variance)
    eps = float(keras.config.epsilon())
    trap = Trap("normalization-stats", "the adapted mean and variance travel as buffers; Keras "
                f"divides by max(sqrt(variance), {eps!r})")
    return Converted(f"Normalization({tuple(mean.shape)!r}, {eps!r})", ("cl",), "cl",
                     {"mean": mean, "variance": variance}, traps=[trap],
                     helpers=("Normalization",))


CONVERTERS = {"Rescaling": rescaling, "Normalization": normalization}
