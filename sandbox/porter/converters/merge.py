"""Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..converted import Converted, Layout, Site, torch_axis


def common_layout(site: Site) -> Layout:
    """Inputs of one rank can stay as they are (the first one's layout); broadcasting
    between ranks is Keras's own, channels last."""
    ranks = {len(s) for s in site.in_shapes}
    return site.in_layouts[0] if len(ranks) == 1 else "cl"


def elementwise(layer: Any, site: Site) -> Converted:
    layout = common_layout(site)
    name = type(layer).__name__
    return Converted(f"{name}()", (layout,) * len(site.in_shapes), layout, helpers=(name,))


def concatenate(layer: Any, site: Site) -> Converted:
    layout = common_layout(site)
    dim = torch_axis(layer.axis, site.rank, layout)
    return Converted(f"Concatenate(dim={dim})", (layout,) * len(site.in_shapes), layout,
                     helpers=("Concatenate",))


def dot(layer: Any, site: Site) -> Converted | None:
    axes = layer.axes if isinstance(layer.axes, list | tuple) else (layer.axes, layer.axes)
    ranks = [len(s) for s in site.in_shapes]
    if len(ranks) != 2 or not all(isinstance(a, int) for a in axes):
        return None
    a, b = (int(axis) % rank for axis, rank in zip(axes, ranks, strict=True))
    normalize = ", normalize=True" if layer.normalize else ""
    return Converted(f"Dot(({a}, {b}){normalize})", ("cl", "cl"), "cl", helpers=("Dot",))


CONVERTERS: dict[str, Callable[[Any, Site], Converted | None]] = {name: elementwise for name in
              ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")}
CONVERTERS["Concatenate"] = concatenate
CONVERTERS["Dot"] = dot
