"""`port()`: a Keras model in, PyTorch source, its state_dict and what was done out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .converted import Layout

LayoutMode = Literal["nhwc", "nchw"]


@dataclass(frozen=True)
class LayerPort:
    """One Keras layer and the PyTorch attribute it became."""

    name: str
    class_name: str
    path: tuple[str, ...]  # layer names from the top model down (nested models first)
    attribute: str | None  # dotted module path; None for an InputLayer
    post: str = "{y}"  # turns the attribute's output into the Keras layer's output
    layout: Layout = "cl"  # how forward holds that output
    stub: bool = False
    argument: str | None = None  # an InputLayer's: the forward argument it became
    inline: bool = False  # a keras.ops call, written as an expression in forward


@dataclass(frozen=True)
class AppliedTrap:
    layer: str
    key: str
    text: str


@dataclass
class Port:
    source: str
    state_dict: dict[str, np.ndarray]
    class_name: str
    layout: LayoutMode
    layers: list[LayerPort] = field(default_factory=list)
    traps: list[AppliedTrap] = field(default_factory=list)
    unsupported: list[LayerPort] = field(default_factory=list)

    def save(self, directory: str | Path) -> None:
        """Write model.py and weights.safetensors."""
        from safetensors.numpy import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.py").write_text(self.source)
        save_file({k: np.ascontiguousarray(v) for k, v in self.state_dict.items()},
                  str(out / "weights.safetensors"))


def port(model: Any, *, layout: LayoutMode = "nhwc", class_name: str | None = None) -> Port:
    from .emit import emit

    if layout not in ("nhwc", "nchw"):
        raise ValueError(f"layout must be 'nhwc' or 'nchw', not {layout!r}")
    return emit(model, layout, class_name)
