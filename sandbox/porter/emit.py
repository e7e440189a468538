"""Writes model.py from fixed templates.

Keras names reach the source only through `names.identifier` (attributes,
locals, classes) or `repr` (comments, stub messages); config values only
as numbers and tuples that converters format themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import helpers, names, wrap
from .converted import Converted, Site, Trap, repeat
from .converters import convert
from .converters.ops import convert_op
from .forward import Body
from .graph import functional, is_nested_model, is_op, roles, walk
from .ported import AppliedTrap, LayerPort, LayoutMode, Port

HEADER = '''"""PyTorch port of a Keras model, written by sidebyside's porter.

{layout_note}
"""
# Keras model: {model_name}

from __future__ import annotations

import torch
{functional}from safetensors.torch import load_file
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
@dataclass
class ClassOut:
    name: str
    layers: list[LayerPort] = field(default_factory=list)
    state_dict: dict[str, np.ndarray] = field(default_factory=dict)
    traps: list[AppliedTrap] = field(default_factory=list)


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
        body = Body(graph, local, "cf" if mode == "nchw" else "cl")
        for call in graph.calls:  # a mask reads best under a name of its own: mask=not_equal
            places = (*roles(call.node)[0], *call.masks)
            body.named.update(t for t, role in zip(call.inputs, places, strict=False)
                              if role.endswith("mask"))
        init: list[str] = []
        modules: dict[int, tuple[str, Converted]] = {}
        said: set[Trap] = set()  # a trap is commented where it first happens

        def comments(converted: Converted, where: str) -> list[str]:
            new = [t for t in converted.traps if t.where == where and t not in said]
            said.update(new)
            return [line for t in new for line in wrap.comment(f"{t.key}: {one_line(t.text)}", 8)]

        args = []
        for tensor, layer in zip(graph.inputs, graph.input_layers, strict=True):
            args.append(body.argument(tensor, layer.name))
            out.layers.append(LayerPort(layer.name, type(layer).__name__, (layer.name,), None,
                                        argument=args[-1]))

        for call in graph.calls:
            layer = call.layer
            if id(layer) not in modules:
                site = Site(tuple(body.layout_of(t) for t in call.inputs),
                            tuple(tuple(graph.tensors[t].shape) for t in call.inputs),
                            tuple(tuple(graph.tensors[t].shape) for t in call.outputs),
                            *with_masks(roles(call.node), call.masks))
                converted = convert_op(layer, call.node, site) if is_op(layer) else None
                if converted is not None:
                    attr = ""
                    out.layers.append(LayerPort(layer.name, type(layer).__name__,
                                                (layer.name,), None, inline=True))
                else:
                    attr = attrs.name(layer.name)
                    converted = self.convert_layer(layer, site, attr, out)
                    init += comments(converted, "init")
                    assign = f"self.{attr} = "
                    # A stub stays on one line: its config is one long string anyway.
                    first, *rest = ([converted.module] if converted.stub
                                    else wrap.fold(converted.module, 8, len(assign)))
                    init += [assign + first, *rest]
                modules[id(layer)] = (attr, converted)
            attr, converted = modules[id(layer)]
            xs = [body.get(t, w) for t, w in zip(call.inputs, converted.wants, strict=False)]
            body.read(call.inputs)
            body.lines += comments(converted, "forward")
            expr = converted.call.replace("{m}", f"self.{attr}").replace("{args}", ", ".join(xs))
            for i, x in enumerate(xs):
                expr = expr.replace(f"{{x{i}}}", x)
            body.assign(call.outputs, output_names(layer, len(call.outputs)), converted.out,
                        converted.post.replace("{y}", expr))

        results = [body.get(t, body.boundary(t)) for t in graph.outputs]
        returns = "torch.Tensor" if len(results) == 1 else "tuple[torch.Tensor, ...]"
        signature = ", ".join(f"{a}: torch.Tensor" for a in args)
        lines = [f"class {cls}(nn.Module):", f"    # Keras model {model.name!r}",
                 "    def __init__(self) -> None:", "        super().__init__()"]
        lines += [f"        {line}" for line in init]
        lines += ["", f"    def forward(self, {signature}) -> {returns}:"]
        lines += [f"        {part}" for line in body.lines for part in wrap.statement(line, 8)]
        lines.append(f"        return {', '.join(results)}")
        self.blocks.append("\n".join(lines) + "\n")
        return out

    def convert_layer(self, layer: Any, site: Site, attr: str, out: ClassOut) -> Converted:
        if is_nested_model(layer):
            if id(layer) not in self.nested:
                cls = self.class_names.name(names.class_name(layer.name), sep="")
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


def with_masks(given: tuple[tuple[str, ...], tuple[str, ...]],
               masks: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    places, options = given
    return (*places, *masks), options


def output_names(layer: Any, n: int) -> list[str]:
    """A nested model's results are named after the layers that make them; a recurrent
    layer's states after the state (`encoder_h`, `encoder_c`)."""
    inner = functional(layer) if n > 1 else None
    if inner is not None:
        return [t._keras_history[0].name for t in inner.outputs]
    states = STATE_NAMES.get(type(layer).__name__, ())
    if n > 1 and getattr(layer, "return_state", False) and len(states) == n - 1:
        return [layer.name, *(f"{layer.name}_{s}" for s in states)]
    return [layer.name] * n


STATE_NAMES = {"LSTM": ("h", "c"), "GRU": ("h",), "SimpleRNN": ("h",)}


def one_line(text: str) -> str:
    return " ".join(text.split())


def emit(model: Any, mode: LayoutMode, class_name: str | None) -> Port:
    emitter = Emitter()
    cls = emitter.class_names.name(names.class_name(class_name or model.name), sep="")
    top = emitter.emit_class(model, cls, mode)
    parts = [helpers.BLOCKS[name] for name in helpers.needed(emitter.helpers)]
    parts += ["\n" + block for block in emitter.blocks]
    parts.append(LOAD.format(cls=cls))
    code = "\n".join(parts)
    functional = "import torch.nn.functional as F\n" if "F." in code else ""
    source = HEADER.format(model_name=repr(str(model.name)), layout_note=LAYOUT_NOTES[mode],
                           functional=functional) + "\n" + code
    unsupported = [lp for lp in top.layers if lp.stub]
    return Port(source, top.state_dict, cls, mode, top.layers, top.traps, unsupported)
