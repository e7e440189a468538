"""Small pieces every converter family uses."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..converted import Layout, Site, Trap


def array(variable: Any) -> np.ndarray:
    return np.ascontiguousarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def held(layer: Any) -> Layout:
    """The layout a spatial layer wants its tensor in: channels first, for torch. A
    channels_first Keras layer's tensor already is, as Keras holds it ("cl")."""
    return "cf" if channels_last(layer) else "cl"


def channels(layer: Any, site: Site) -> int:
    shape = site.in_shapes[0]
    return int(shape[-1] if channels_last(layer) else shape[1])  # type: ignore[arg-type]


def kernel_trap(keras_layout: str, torch_layout: str) -> Trap:
    return Trap("kernel-layout", f"Keras kernel {keras_layout} is stored as {torch_layout}")


def size(values: Any) -> str:
    """A kernel size or stride as PyTorch code says it: `3` for (3, 3)."""
    values = tuple(int(v) for v in values)
    return repr(values[0]) if len(set(values)) == 1 else repr(values)
