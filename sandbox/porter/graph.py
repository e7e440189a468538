"""The Keras functional graph as a list of calls in execution order.

A `Graph` is what both `emit` (to write `forward`) and `prove` (to replay the
Keras side layer by layer) walk, so the two follow the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras


@dataclass(frozen=True)
class Call:
    layer: Any  # keras.Layer (or a keras Operation made by keras.ops)
    inputs: tuple[int, ...]  # ids of the KerasTensors it reads, flattened in call order
    outputs: tuple[int, ...]
    node: Any  # the keras Node, whose arguments the replay fills in
    # Masks the layer reads from its inputs rather than its arguments (after `inputs`):
    # their roles, e.g. "query_mask".
    masks: tuple[str, ...] = ()


# Layers that read their inputs' Keras masks themselves, so that the graph has no edge
# for them: MultiHeadAttention (query, value, key), Attention and AdditiveAttention, and
# the merges whose result a mask changes (the converters have them as "mask" inputs).
IMPLICIT_MASKS = ("MultiHeadAttention", "Attention", "AdditiveAttention")
MASKED_MERGES = ("Multiply", "Maximum", "Minimum")


def implicit_masks(node: Any) -> list[tuple[str, Any]]:
    """(role, mask KerasTensor) for each mask a layer reads off its inputs."""
    name = type(node.operation).__name__
    if not isinstance(node.operation, keras.Layer):
        return []
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if name in MASKED_MERGES and args and isinstance(args[0], list | tuple):
        masks = [getattr(t, "_keras_mask", None) for t in args[0]]
        return [("mask", m) for m in masks if isinstance(m, keras.KerasTensor)]
    if name not in IMPLICIT_MASKS:
        return []
    if name == "MultiHeadAttention":
        params = ("query", "value", "key")
        given = {p: args[i] if i < len(args) else kwargs.get(p) for i, p in enumerate(params)}
        if given["key"] is given["value"]:
            given["key"] = None  # Keras ignores the key's mask then
    else:
        if "mask" in kwargs or not args or not isinstance(args[0], list | tuple):
            return []
        given = dict(zip(("query", "value"), args[0], strict=False))
    found = []
    for role, tensor in given.items():
        mask = getattr(tensor, "_keras_mask", None)
        if isinstance(mask, keras.KerasTensor) and f"{role}_mask" not in kwargs:
            found.append((f"{role}_mask", mask))
    return found


def producers(tensor: Any, known: set[int]) -> list[Any] | None:
    """The nodes (inputs first) that compute a mask the functional graph left out; None
    if it is not computed from this graph's tensors (then the layer goes without it,
    and the proof says whether that matters)."""
    if id(tensor) in known:
        return []
    history = getattr(tensor, "_keras_history", None)
    if history is None or history[0] is None:
        return None
    node = history[0]._inbound_nodes[history[1]]
    if node.is_input:
        return None
    found: list[Any] = []
    for t in node.input_tensors:
        before = producers(t, known)
        if before is None:
            return None
        found += before
    known.update(id(t) for t in node.outputs)
    return [*found, node]


@dataclass(frozen=True)
class Graph:
    model: Any
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    calls: tuple[Call, ...]
    tensors: dict[int, Any]  # id -> KerasTensor, for shapes and dtypes
    input_layers: tuple[Any, ...]


def functional(model: Any) -> Any | None:
    """The Functional graph behind a model, or None for a subclassed one."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            return None
        return model._functional
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def is_op(operation: Any) -> bool:
    """A keras.ops call (`x + 3.0`), not a layer."""
    return not isinstance(operation, keras.Layer)


def is_nested_model(layer: Any) -> bool:
    return isinstance(layer, keras.Model) and functional(layer) is not None


class NotPortable(ValueError):
    """The model has no graph to follow: subclassed, or a Sequential never built."""


def walk(model: Any) -> Graph:
    fn = functional(model)
    if fn is None:
        raise NotPortable(
            f"{type(model).__name__} {str(model.name)!r} has no functional graph to port: a "
            "subclassed Model's call() is Python the porter cannot read, and a Sequential "
            "needs a keras.Input (or one call on data) first")
    tensors: dict[int, Any] = {}
    for t in fn.inputs:
        tensors[id(t)] = t
    # The order the model lists its layers in (as written), deeper calls of a shared one
    # first; then each call as soon as its inputs exist.
    order = {id(op): i for i, op in enumerate(fn.operations)}
    keyed = [((order.get(id(node.operation), len(order)), -depth, n), node)
             for depth, nodes in fn._nodes_by_depth.items() for n, node in enumerate(nodes)
             if node.operation is not None and not node.is_input]
    pending = [node for _, node in sorted(keyed, key=lambda pair: pair[0])]
    masks = {id(node): implicit_masks(node) for node in pending}
    known = {id(t) for nodes in fn._nodes_by_depth.values() for node in nodes
             for t in node.outputs}
    for node in list(pending):
        reachable = []
        for role, mask in masks[id(node)]:
            extra = producers(mask, known)
            if extra is not None:
                reachable.append((role, mask))
                pending[pending.index(node):pending.index(node)] = extra
                masks.update({id(n): [] for n in extra})
        masks[id(node)] = reachable
    calls = []
    while pending:
        ready = next((node for node in pending if all(
            id(t) in tensors for t in (*node.input_tensors, *(m for _, m in masks[id(node)])))),
            None)
        if ready is None:
            raise ValueError(f"the graph of {model.name!r} has a call with no computable input")
        pending.remove(ready)
        for t in ready.outputs:
            tensors[id(t)] = t
        read = masks[id(ready)]
        calls.append(Call(ready.operation,
                          tuple(id(t) for t in (*ready.input_tensors, *(m for _, m in read))),
                          tuple(id(t) for t in ready.outputs), ready,
                          tuple(role for role, _ in read)))
    input_layers = tuple(t._keras_history[0] for t in fn.inputs)
    return Graph(model, tuple(id(t) for t in fn.inputs), tuple(id(t) for t in fn.outputs),
                 tuple(calls), tensors, input_layers)


def roles(node: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(each input tensor's place in the call, the other keyword arguments set)."""
    places: list[str] = []
    for i, arg in enumerate(node.arguments.args):
        places += [str(i)] * len(keras.tree.flatten(arg) if not isinstance(
            arg, keras.KerasTensor) else [arg])
    options = []
    for key in sorted(node.arguments.kwargs):
        value = node.arguments.kwargs[key]
        tensors = [t for t in keras.tree.flatten(value) if isinstance(t, keras.KerasTensor)]
        places += [key] * len(tensors)
        if not tensors and value not in (None, False) and key != "training":
            options.append(key)
    return tuple(places), tuple(options)
