"""What a converter hands back for one Keras layer, and what it is told about the call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

# "cl": the tensor is laid out as Keras has it (channels last). "cf": channels
# moved to axis 1, as PyTorch's convolutions want. Rank <= 2 tensors are both.
Layout = Literal["cl", "cf"]
Where = Literal["init", "forward"]


@dataclass(frozen=True)
class Trap:
    key: str  # e.g. "kernel-layout"
    text: str  # one line, fixed wording and numbers only
    where: Where = "init"


@dataclass(frozen=True)
class Site:
    """The first call of a layer: its inputs' layouts and Keras shapes."""

    in_layouts: tuple[Layout, ...]
    in_shapes: tuple[tuple[int | None, ...], ...]
    out_shapes: tuple[tuple[int | None, ...], ...]
    # Each input's place in the call ("0", "1": positional; "key": a keyword), and the
    # call's other keyword arguments that are set (`training` aside).
    roles: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.in_shapes[0])


@dataclass
class Converted:
    module: str  # constructor source: "nn.Linear(4, 3)"
    wants: tuple[Layout, ...]  # the layout each input must be in
    out: Layout  # the layout of the Keras output as `forward` holds it
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # keys below the attribute
    call: str = "{m}({args})"  # {m}: the attribute, {args}/{x0}, {x1}...: the inputs
    post: str = "{y}"  # turns the module's output into the layer's output
    traps: list[Trap] = field(default_factory=list)
    helpers: tuple[str, ...] = ()  # helper blocks the generated file must define
    stub: bool = False
    inline: bool = False  # a keras.ops call: an expression in forward, no attribute


def channels_first(layout: Layout, rank: int) -> Layout:
    return "cf" if rank >= 3 else layout


def torch_axis(axis: int, rank: int, layout: Layout) -> int:
    """The torch dim of Keras axis `axis` for a tensor held in `layout`."""
    axis %= rank
    if layout == "cl" or rank <= 2 or axis == 0:
        return axis
    return 1 if axis == rank - 1 else axis + 1


def repeat(layout: Layout, n: int) -> tuple[Layout, ...]:
    return (layout,) * n
