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
    calls = []
    while pending:
        ready = next((node for node in pending
                      if all(id(t) in tensors for t in node.input_tensors)), None)
        if ready is None:
            raise ValueError(f"the graph of {model.name!r} has a call with no computable input")
        pending.remove(ready)
        for t in ready.outputs:
            tensors[id(t)] = t
        calls.append(Call(ready.operation, tuple(id(t) for t in ready.input_tensors),
                          tuple(id(t) for t in ready.outputs), ready))
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
