"""Writes model.py from fixed templates.

Keras names reach the source only through `names.identifier` (attributes,
locals, classes) or `repr` (comments, stub messages); config values only
as numbers and tuples that converters format themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import helpers, names
from .converted import Converted, Layout, Site, repeat
from .converters import convert
from .graph import is_nested_model, walk
from .port import AppliedTrap, LayerPort, LayoutMode, Port

HEADER = '''"""PyTorch port of a Keras model, written by sidebyside's porter.

{layout_note}
"""
# Keras model: {model_name}

from __future__ import annotations

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
'''

LOAD = '''
def load(weights_path: str = "weights.safetensors") -> {cls}:
    model = {cls}()
    model.load_state_dict(load_file(weights_path))
    return model.eval()
'''

LAYOUT_NOTES = {
    "nhwc": "Inputs and outputs are channels last, as in Keras; the module permutes inside.",
    "nchw": "Image inputs and outputs (rank 4) are channels first, as PyTorch's.",
}
SUFFIX = {("cf", 3): "ncl", ("cl", 3): "nlc", ("cf", 4): "nchw", ("cl", 4): "nhwc",
          ("cf", 5): "ncdhw", ("cl", 5): "ndhwc"}


@dataclass
class ClassOut:
    name: str
    layers: list[LayerPort] = field(default_factory=list)
    state_dict: dict[str, np.ndarray] = field(default_factory=dict)
    traps: list[AppliedTrap] = field(default_factory=list)


def permutation(source: Layout, rank: int) -> tuple[int, ...]:
    if source == "cl":  # channels last -> first
        return (0, rank - 1, *range(1, rank - 1))
    return (0, *range(2, rank), 1)


class Emitter:
    def __init__(self) -> None:
        self.blocks: list[str] = []  # class sources, nested ones first
        self.class_names = names.Namer(names.RESERVED | set(helpers.BLOCKS))
        self.helpers: set[str] = set()
        self.nested: dict[int, ClassOut] = {}

    def emit_class(self, model: Any, cls: str, mode: LayoutMode) -> ClassOut:
        graph = walk(model)
        out = ClassOut(cls)
        attrs = names.Namer(set())
        local = names.Namer(names.RESERVED | set(helpers.BLOCKS) | self.class_names.taken)
        init: list[str] = []
        body: list[str] = []
        held: dict[int, dict[Layout, str]] = {}
        modules: dict[int, tuple[str, Converted]] = {}

        def rank(tensor: int) -> int:
            return len(graph.tensors[tensor].shape)

        def boundary(tensor: int) -> Layout:
            return "cf" if mode == "nchw" and rank(tensor) == 4 else "cl"

        def hold(tensor: int, want: Layout) -> str:
            have = held[tensor]
            if want in have or rank(tensor) <= 2:
                return have.get(want) or next(iter(have.values()))
            source, var = next(iter(have.items()))
            base = var.rsplit("_n", 1)[0] if var.endswith(tuple(SUFFIX.values())) else var
            new = local.name(f"{base}_{SUFFIX.get((want, rank(tensor)), want)}")
            body.append(f"{new} = {var}.permute{permutation(source, rank(tensor))!r}")
            have[want] = new
            return new

        args = []
        for tensor, layer in zip(graph.inputs, graph.input_layers, strict=True):
            arg = local.name(layer.name, "inputs")
            args.append(arg)
            held[tensor] = {boundary(tensor): arg}
            out.layers.append(LayerPort(layer.name, type(layer).__name__, (layer.name,), None))

        for call in graph.calls:
            layer = call.layer
            if id(layer) not in modules:
                site = Site(tuple(next(iter(held[t])) for t in call.inputs),
                            tuple(tuple(graph.tensors[t].shape) for t in call.inputs),
                            tuple(tuple(graph.tensors[t].shape) for t in call.outputs))
                attr = attrs.name(layer.name)
                converted = self.convert_layer(layer, site, attr, out)
                modules[id(layer)] = (attr, converted)
                init += [f"# {t.key}: {one_line(t.text)}" for t in converted.traps
                         if t.where == "init"]
                init.append(f"self.{attr} = {converted.module}")
            attr, converted = modules[id(layer)]
            xs = [hold(t, w) for t, w in zip(call.inputs, converted.wants, strict=False)]
            body += [f"# {t.key}: {one_line(t.text)}" for t in converted.traps
                     if t.where == "forward"]
            expr = converted.call.replace("{m}", f"self.{attr}").replace("{args}", ", ".join(xs))
            for i, x in enumerate(xs):
                expr = expr.replace(f"{{x{i}}}", x)
            expr = converted.post.replace("{y}", expr)
            outs = [local.name(layer.name) for _ in call.outputs]
            body.append(f"{', '.join(outs)} = {expr}")
            for tensor, var in zip(call.outputs, outs, strict=True):
                held[tensor] = {converted.out: var}

        results = [hold(t, boundary(t)) for t in graph.outputs]
        returns = "torch.Tensor" if len(results) == 1 else "tuple[torch.Tensor, ...]"
        signature = ", ".join(f"{a}: torch.Tensor" for a in args)
        lines = [f"class {cls}(nn.Module):", f"    # Keras model {model.name!r}",
                 "    def __init__(self) -> None:", "        super().__init__()"]
        lines += [f"        {line}" for line in init]
        lines += ["", f"    def forward(self, {signature}) -> {returns}:"]
        lines += [f"        {line}" for line in body]
        lines.append(f"        return {', '.join(results)}")
        self.blocks.append("\n".join(lines) + "\n")
        return out

    def convert_layer(self, layer: Any, site: Site, attr: str, out: ClassOut) -> Converted:
        if is_nested_model(layer):
            if id(layer) not in self.nested:
                cls = self.class_names.name(names.class_name(layer.name))
                self.nested[id(layer)] = self.emit_class(layer, cls, "nhwc")
            inner = self.nested[id(layer)]
            out.layers.append(LayerPort(layer.name, type(layer).__name__, (layer.name,), attr))
            for lp in inner.layers:
                out.layers.append(LayerPort(
                    lp.name, lp.class_name, (layer.name, *lp.path),
                    None if lp.attribute is None else f"{attr}.{lp.attribute}",
                    lp.post, lp.layout, lp.stub))
            out.state_dict.update({f"{attr}.{k}": v for k, v in inner.state_dict.items()})
            out.traps += inner.traps
            wants = repeat("cl", len(site.in_shapes))
            return Converted(f"{inner.name}()", wants, "cl")
        converted = convert(layer, site)
        self.helpers.update(converted.helpers)
        out.layers.append(LayerPort(layer.name, type(layer).__name__, (layer.name,), attr,
                                    converted.post, converted.out, converted.stub))
        out.state_dict.update({f"{attr}.{k}": v for k, v in converted.weights.items()})
        out.traps += [AppliedTrap(layer.name, t.key, t.text) for t in converted.traps]
        return converted


def one_line(text: str) -> str:
    return " ".join(text.split())


def emit(model: Any, mode: LayoutMode, class_name: str | None) -> Port:
    emitter = Emitter()
    cls = emitter.class_names.name(names.class_name(class_name or model.name))
    top = emitter.emit_class(model, cls, mode)
    parts = [HEADER.format(model_name=repr(str(model.name)),
                           layout_note=LAYOUT_NOTES[mode])]
    parts += [helpers.BLOCKS[name] for name in helpers.needed(emitter.helpers)]
    parts += ["\n" + block for block in emitter.blocks]
    parts.append(LOAD.format(cls=cls))
    source = "\n".join(parts)
    unsupported = [lp for lp in top.layers if lp.stub]
    return Port(source, top.state_dict, cls, mode, top.layers, top.traps, unsupported)
