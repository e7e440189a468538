"""What TensorFlow built: the graph of a traced tf.function, pruned for reading.

A raw traced graph is mostly plumbing (a small Keras training step has 66+
ops: constants, shape arithmetic, variable handles, identities). It is pruned
to what a person reads: a variable's handle and its read become one node
named after the variable, identities are looked through, constants and
shape arithmetic are hidden along with everything computed only from them,
and only what feeds an output or a variable update is kept.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import tensorflow as tf

from sandbox.graphs.diagram import Diagram, Node, NodeKind

# Always hidden. Slicing, packing and filling are hidden by the general rule
# instead: when all they read is hidden, they only compute shapes.
HIDDEN = {
    "Const", "NoOp", "Shape", "ShapeN", "Size", "Rank", "BroadcastGradientArgs", "BroadcastArgs",
    "ZerosLike", "OnesLike",
}  # fmt: skip
BYPASSED = {"Identity", "IdentityN"}
CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
SOURCES = ("Random", "StatelessRandom", "TruncatedNormal", "VarHandleOp")  # visible with no inputs

# Where a tensor's value comes from: ("node", key) a drawn op; ("leaf", placeholder or read op)
# an input or variable read, drawn afresh per use; ("var", name) a variable's handle;
# ("leaf-var", name) a handle fed straight to an op; ("hidden", "") nothing drawn.
Source = tuple[str, str]
HIDDEN_SOURCE: Source = ("hidden", "")


def shape_text(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return ""
    dims = shape.as_list()
    return (
        "scalar"
        if not dims
        else "\N{MULTIPLICATION SIGN}".join("?" if d is None else str(d) for d in dims)
    )


def is_gradient(op: tf.Operation) -> bool:
    name = op.name
    return (
        name.startswith(("gradient_tape/", "gradients/"))
        or "/gradients/" in name
        or op.type.endswith("Grad")
    )


def function_diagram(cf: Any, names: dict[int, str]) -> Diagram:
    """Prune `cf.graph`; `names` maps id(variable handle or captured tensor) to a name."""
    graph = cf.graph
    var_names = {id(v.handle): v.name.removesuffix(":0") for v in cf.variables}
    var_names.update(names)
    pruner = _Pruner({internal.op.name: ext for ext, internal in graph.captures}, var_names)
    pruner.run(graph)
    call = pruner.lone_call(graph)
    if call is not None:  # a wrapper (Keras's fit loop, say): what it calls is the story
        callee = call.get_attr("f").name
        inner = getattr(graph, "_functions", {}).get(callee)
        inner_graph = getattr(inner, "graph", None)
        if inner_graph is not None and len(inner_graph.inputs) == len(call.inputs):
            pairs = zip(inner_graph.inputs, call.inputs, strict=True)
            args = {p.op.name: pruner.describe(t) for p, t in pairs}
            inner_name = _function_name(callee)
            note = f"{graph.name} only calls {inner_name}: this is {inner_name}"
            pruner = _Pruner({}, {}, args)
            pruner.run(inner_graph)
            pruner.diagram.notes.append(note)
    return pruner.diagram


class _Pruner:
    """One pass over the ops in creation order, which is an order inputs come first in."""

    def __init__(
        self,
        external: dict[str, Any],
        var_names: dict[int, str],
        args: dict[str, Source | Node] | None = None,
    ) -> None:
        self.external = external  # captured placeholder -> the eager value it stands for
        self.var_names = var_names
        self.args = args or {}  # for a called function: placeholder -> what the caller passed
        self.diagram = Diagram(legend={
            "input": "input", "param": "variable", "op": "op", "grad": "gradient op",
            "update": "variable update", "output": "output",
        })  # fmt: skip
        self.sources: dict[str, Source] = {}  # tensor name -> where its value comes from
        self.leaves: dict[str, Node] = {}  # inputs and variable reads: drawn afresh per use
        self.kept: dict[str, str] = {}  # op name -> node key

    def run(self, graph: Any) -> None:
        for op in graph.get_operations():
            self.visit(op)
        diagram = self.diagram
        for path, tensor in _flatten(graph.structured_outputs, ""):
            if isinstance(tensor, tf.Tensor):
                key = diagram.add(Node(f"return{path}\n{shape_text(tensor.shape)}", "output"))
                diagram.roots.append(key)
                self.feed(self.sources.get(tensor.name, HIDDEN_SOURCE), key, ())
        for op in graph.control_outputs:  # variable updates: what a training step is for
            if op.name in self.kept and op.type != "ReadVariableOp":
                diagram.roots.append(self.kept[op.name])
        _ancestors_only(diagram)

    def lone_call(self, graph: Any) -> tf.Operation | None:
        """The one function call in a graph that does little else, if that is what it is."""
        shown = {k for k, n in self.diagram.nodes.items() if n.kind in ("op", "grad", "update")}
        ops = [op for op in graph.get_operations() if self.kept.get(op.name) in shown]
        calls = [op for op in ops if op.type in CALLS]
        return calls[0] if len(calls) == 1 and len(ops) <= 4 else None

    def describe(self, tensor: tf.Tensor) -> Source | Node:
        kind, ref = self.sources.get(tensor.name, HIDDEN_SOURCE)
        if kind == "leaf":
            return self.leaves[ref]
        if kind == "node":
            label = self.diagram.nodes[ref].label.split("\n")[0]
            return Node(f"{label}\n{shape_text(tensor.shape)}", "input", tooltip="argument")
        return (kind, ref)

    def visit(self, op: tf.Operation) -> None:
        srcs = [self.sources.get(t.name, HIDDEN_SOURCE) for t in op.inputs]
        if op.type in BYPASSED:
            for i, out in enumerate(op.outputs):
                self.sources[out.name] = srcs[i] if i < len(srcs) else HIDDEN_SOURCE
        elif op.type == "Placeholder":
            self.sources[op.outputs[0].name] = self._placeholder(op)
        elif op.type == "ReadVariableOp" and srcs and srcs[0][0] == "var":
            label = f"{srcs[0][1]}\n{_out_shape(op)}"
            self.leaves[op.name] = Node(label, "param", tooltip=f"{op.name} ({op.type})")
            self.sources[op.outputs[0].name] = ("leaf", op.name)
        elif _hidden(op, srcs):
            for out in op.outputs:
                self.sources[out.name] = HIDDEN_SOURCE
        else:
            self._keep(op, srcs)

    def _keep(self, op: tf.Operation, srcs: list[Source]) -> None:
        targets = [name for kind, name in srcs if kind == "var"]
        if not op.outputs and targets:  # a write: name the variable instead of drawing an edge
            node = _node(op, f"{op.type}\n\N{RIGHTWARDS ARROW} {targets[0]}", "update")
        else:
            title = f"{_function_name(op.get_attr('f').name)}()" if op.type in CALLS else op.type
            node = _node(op, f"{title}\n{_out_shape(op)}".rstrip(), _kind(op))
            srcs = srcs + [("leaf-var", name) for name in targets]
        key = self.diagram.add(node)
        for src in srcs:
            self.feed(src, key, node.cluster)
        self.kept[op.name] = key
        for out in op.outputs:
            self.sources[out.name] = ("node", key)

    def feed(self, src: Source, key: str, cluster: tuple[str, ...]) -> None:
        kind, ref = src
        if kind == "node":
            self.diagram.link(ref, key)
        elif kind in ("leaf", "leaf-var"):
            template = self.leaves[ref] if kind == "leaf" else Node(ref, "param")
            copy = Node(template.label, template.kind, cluster, template.tooltip)
            self.diagram.link(self.diagram.add(copy), key)

    def _placeholder(self, op: tf.Operation) -> Source:
        out = op.outputs[0]
        passed = self.args.get(op.name)
        if isinstance(passed, Node):
            self.leaves[op.name] = passed
            return ("leaf", op.name)
        if passed is not None:
            return passed
        ext = self.external.get(op.name)
        if out.dtype == tf.resource:  # a variable, captured or passed in
            return ("var", op.name if ext is None else self.var_names.get(id(ext), op.name))
        if ext is None:
            tooltip, label = "argument", op.name
        elif id(ext) in self.var_names:  # a tensor from the snippet, used without being passed in
            tooltip, label = "captured tensor", self.var_names[id(ext)]
        else:
            return HIDDEN_SOURCE  # a captured constant
        self.leaves[op.name] = Node(f"{label}\n{shape_text(out.shape)}", "input", tooltip=tooltip)
        return ("leaf", op.name)


def _node(op: tf.Operation, label: str, kind: NodeKind) -> Node:
    scope = tuple(op.name.split("/")[:-1][:2])
    return Node(label, kind, scope, tooltip=f"{op.name} ({op.type})")


def _out_shape(op: tf.Operation) -> str:
    return shape_text(op.outputs[0].shape) if op.outputs else ""


def _kind(op: tf.Operation) -> NodeKind:
    return "grad" if is_gradient(op) else "op"


def _hidden(op: tf.Operation, srcs: list[Source]) -> bool:
    if op.type in HIDDEN:
        return True
    if not srcs:
        return not op.type.startswith(SOURCES)
    return all(kind == "hidden" for kind, _ in srcs) and not op.type.startswith(SOURCES)


def _function_name(library_name: str | bytes) -> str:
    """`__inference_one_step_on_data_529` -> `one_step_on_data`."""
    name = library_name.decode() if isinstance(library_name, bytes) else library_name
    return re.sub(r"_\d+$", "", name.removeprefix("__inference_"))


def _flatten(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{path}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [item for i, v in enumerate(value) for item in _flatten(v, f"{path}[{i}]")]
    return [(path, value)]


def _ancestors_only(diagram: Diagram) -> Diagram:
    inputs: dict[str, list[str]] = {}
    for src, dst in diagram.edges:
        inputs.setdefault(dst, []).append(src)
    keep: set[str] = set()
    queue = deque(diagram.roots)
    while queue:
        key = queue.popleft()
        if key not in keep:
            keep.add(key)
            queue.extend(inputs.get(key, ()))
    diagram.nodes = {k: n for k, n in diagram.nodes.items() if k in keep}
    diagram.edges = [(s, d) for s, d in diagram.edges if s in keep and d in keep]
    return diagram
