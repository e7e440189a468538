"""The body of a generated `forward`: which variable holds each tensor, and in which
layout. A tensor read once lives in `x`, as a hand-written chain would have it;
a tensor read again (a skip, a branch, an output) keeps a name of its own."""

from __future__ import annotations

from collections import Counter

from .converted import Layout
from .graph import Graph
from .names import Namer, identifier

RUNNINGS = ("x", "h", "y", "z")
SUFFIX = {("cf", 3): "ncl", ("cl", 3): "nlc", ("cf", 4): "nchw", ("cl", 4): "nhwc",
          ("cf", 5): "ncdhw", ("cl", 5): "ndhwc"}


def permutation(source: Layout, rank: int) -> tuple[int, ...]:
    if source == "cl":  # channels last -> first
        return (0, rank - 1, *range(1, rank - 1))
    return (0, *range(2, rank), 1)


class Body:
    def __init__(self, graph: Graph, local: Namer, image_layout: Layout) -> None:
        self.graph, self.local, self.image_layout = graph, local, image_layout
        # The running variable: `x`, unless an input is called x.
        inputs = {identifier(layer.name, "inputs") for layer in graph.input_layers}
        free = [name for name in RUNNINGS if name not in inputs]
        self.running = free[0] if free else local.name("x_")
        local.taken.add(self.running)
        self.lines: list[str] = []
        self.held: dict[int, dict[Layout, str]] = {}
        self.uses = Counter(t for call in graph.calls for t in call.inputs)
        self.uses.update(graph.outputs)
        self.in_x: int | None = None
        # Several results read best under their layers' names.
        self.named = set(graph.outputs) if len(graph.outputs) > 1 else set()

    def rank(self, tensor: int) -> int:
        return len(self.graph.tensors[tensor].shape)

    def boundary(self, tensor: int) -> Layout:
        """Inputs and outputs: Keras's layout, or channels first for images if asked."""
        return self.image_layout if self.rank(tensor) == 4 else "cl"

    def argument(self, tensor: int, name: str) -> str:
        arg = self.local.name(name, "inputs")
        self.held[tensor] = {self.boundary(tensor): arg}
        return arg

    def x_free(self) -> bool:
        return self.in_x is None or self.uses[self.in_x] == 0

    def layout_of(self, tensor: int) -> Layout:
        return next(iter(self.held[tensor]))

    def get(self, tensor: int, want: Layout) -> str:
        """The variable holding `tensor` in `want`, permuting it there if need be."""
        have = self.held[tensor]
        if want in have or self.rank(tensor) <= 2:
            return have.get(want) or next(iter(have.values()))
        source, var = next(iter(have.items()))
        if var == self.running and self.in_x == tensor and self.uses[tensor] == 1:
            new = self.running  # its last read: permute in place
            del have[source]
        elif self.uses[tensor] == 1 and self.x_free():
            new, self.in_x = self.running, tensor
        else:
            base = var.rsplit("_n", 1)[0] if var.endswith(tuple(SUFFIX.values())) else var
            new = self.local.name(f"{base}_{SUFFIX[(want, self.rank(tensor))]}")
        self.lines.append(f"{new} = {var}.permute{permutation(source, self.rank(tensor))!r}")
        have[want] = new
        return new

    def read(self, tensors: tuple[int, ...]) -> None:
        for tensor in tensors:
            self.uses[tensor] -= 1

    def assign(self, tensors: tuple[int, ...], names: list[str], layout: Layout,
               expr: str) -> None:
        """`names`: one per tensor; a single result read once goes to the running one."""
        outs = []
        for tensor, name in zip(tensors, names, strict=True):
            if self.uses[tensor] == 0:
                var = "_"
            elif (self.uses[tensor] == 1 and self.x_free() and tensor not in self.named
                  and len(tensors) == 1):
                var, self.in_x = self.running, tensor
            else:
                var = self.local.name(name)
            self.held[tensor] = {layout: var}
            outs.append(var)
        self.lines.append(f"{', '.join(outs)} = {expr}")
