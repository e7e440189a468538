"""What TensorFlow built: the graph of a traced tf.function, and a Keras model's layers.

A raw traced graph is mostly plumbing (a small Keras training step has 66+
ops: constants, shape arithmetic, variable handles, identities). It is pruned
to what a person reads: a variable's handle and its read become one node
named after the variable, identities are looked through, constants and
shape arithmetic are hidden along with everything computed only from them,
and only what feeds an output or a variable update is kept.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import tensorflow as tf

from sandbox.graphs.diagram import Diagram, Node

# Always hidden. Slicing, packing and filling are hidden by the general rule
# instead: when all they read is hidden, they only compute shapes.
HIDDEN = {
    "Const", "NoOp", "Shape", "ShapeN", "Size", "Rank", "BroadcastGradientArgs", "BroadcastArgs",
    "ZerosLike", "OnesLike",
}  # fmt: skip
BYPASSED = {"Identity", "IdentityN"}
SOURCES = ("Random", "StatelessRandom", "TruncatedNormal", "VarHandleOp")  # visible with no inputs

Source = tuple[str, str]  # ("node", key) | ("var", name) | ("hidden", "")
HIDDEN_SOURCE: Source = ("hidden", "")


def shape_text(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return ""
    dims = shape.as_list()
    return "scalar" if not dims else "\N{MULTIPLICATION SIGN}".join("?" if d is None else str(d) for d in dims)


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
    external = {internal.op.name: ext for ext, internal in graph.captures}
    var_names = {id(v.handle): v.name.removesuffix(":0") for v in cf.variables}
    var_names.update(names)
    diagram = Diagram(legend={
        "input": "input", "param": "variable", "op": "op", "grad": "gradient op",
        "update": "variable update", "output": "output",
    })  # fmt: skip
    sources: dict[str, Source] = {}
    kept: dict[str, str] = {}  # op name -> node key, for control outputs
    for op in graph.get_operations():
        srcs = [sources.get(t.name, HIDDEN_SOURCE) for t in op.inputs]
        if op.type in BYPASSED:
            for i, out in enumerate(op.outputs):
                sources[out.name] = srcs[i] if i < len(srcs) else HIDDEN_SOURCE
            continue
        if op.type == "Placeholder":
            sources[op.outputs[0].name] = _placeholder(diagram, op, external, var_names)
            continue
        if op.type == "ReadVariableOp" and srcs and srcs[0][0] == "var":
            key = diagram.add(_node(op, srcs[0][1], "param"))
            sources[op.outputs[0].name] = ("node", key)
            continue
        if _hidden(op, srcs):
            for out in op.outputs:
                sources[out.name] = HIDDEN_SOURCE
            continue
        targets = [name for kind, name in srcs if kind == "var"]
        if not op.outputs and targets:  # a write: name the variable instead of drawing an edge
            key = diagram.add(_node(op, f"{op.type}\n\N{RIGHTWARDS ARROW} {targets[0]}", "update"))
        else:
            key = diagram.add(_node(op, f"{op.type}\n{_out_shape(op)}".rstrip(), _kind(op)))
            for name in targets:
                diagram.link(diagram.add(_node(op, name, "param")), key)
        for kind, src in srcs:
            if kind == "node":
                diagram.link(src, key)
        kept[op.name] = key
        for out in op.outputs:
            sources[out.name] = ("node", key)
    _add_outputs(diagram, cf, sources)
    for op in graph.control_outputs:
        if op.name in kept and op.type != "ReadVariableOp":
            diagram.roots.append(kept[op.name])
    return _ancestors_only(diagram)


def _node(op: tf.Operation, label: str, kind: Any) -> Node:
    scope = tuple(op.name.split("/")[:-1][:2])
    return Node(label, kind, scope, tooltip=f"{op.name} ({op.type})")


def _out_shape(op: tf.Operation) -> str:
    return shape_text(op.outputs[0].shape) if op.outputs else ""


def _kind(op: tf.Operation) -> str:
    return "grad" if is_gradient(op) else "op"


def _hidden(op: tf.Operation, srcs: list[Source]) -> bool:
    if op.type in HIDDEN:
        return True
    if not srcs:
        return not op.type.startswith(SOURCES) and op.type != "Placeholder"
    all_hidden = all(kind == "hidden" for kind, _ in srcs)
    return all_hidden and not op.type.startswith(SOURCES)


def _placeholder(
    diagram: Diagram, op: tf.Operation, external: dict[str, Any], names: dict[int, str]
) -> Source:
    out = op.outputs[0]
    ext = external.get(op.name)
    if ext is None and out.dtype == tf.resource:  # a variable passed as an argument
        return ("var", op.name)
    if ext is None:  # an argument of the function
        label = f"{op.name}\n{shape_text(out.shape)}"
        return ("node", diagram.add(Node(label, "input", tooltip="argument")))
    if out.dtype == tf.resource:
        return ("var", names.get(id(ext), op.name.split("/")[0]))
    if id(ext) in names:  # a tensor from the snippet, used without being passed in
        label = f"{names[id(ext)]}\n{shape_text(out.shape)}"
        return ("node", diagram.add(Node(label, "input", tooltip="captured tensor")))
    return HIDDEN_SOURCE  # a captured constant


def _add_outputs(diagram: Diagram, cf: Any, sources: dict[str, Source]) -> None:
    for path, tensor in _flatten(cf.structured_outputs, ""):
        if not isinstance(tensor, tf.Tensor):
            continue
        kind, src = sources.get(tensor.name, HIDDEN_SOURCE)
        label = f"return{path}\n{shape_text(tensor.shape)}"
        key = diagram.add(Node(label, "output"))
        diagram.roots.append(key)
        if kind == "node":
            diagram.link(src, key)


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
