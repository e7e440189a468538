"""Keras models: traced for their forward graph, or listed layer by layer.

Keras 3 wraps each TensorFlow variable (`keras.Variable.value` is the
`tf.Variable`), so a traced graph's captured handles are matched through
`.value.handle`.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import tensorflow as tf

from sandbox.graphs.diagram import Diagram, Node
from sandbox.graphs.tf_graph import shape_text


def keras() -> Any | None:
    """The keras module if the process has loaded it; a model can only exist then."""
    return sys.modules.get("keras")


def is_model(value: Any) -> bool:
    k = keras()
    return k is not None and isinstance(value, k.Model)


def handle_names(namespace: dict[str, Any]) -> dict[int, str]:
    """id(variable handle or eager tensor) -> the snippet's name for it."""
    k = keras()
    names: dict[int, str] = {}
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, tf.Variable):
            names[id(value.handle)] = name
        elif (
            k is not None and isinstance(value, k.Variable) and isinstance(value.value, tf.Variable)
        ):
            names[id(value.value.handle)] = name
        elif isinstance(value, tf.Tensor):
            names[id(value)] = name
    return names


def model_function(model: Any) -> Any:
    """A concrete function of `model(x, training=False)` for the inputs it was built with."""
    spec = _input_spec(model)
    forward = tf.function(lambda inputs: model(inputs, training=False))
    return forward.get_concrete_function(spec)


def _input_spec(model: Any) -> Any:
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if inputs:
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in inputs]
        return specs[0] if len(specs) == 1 else specs
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) == 1:
        shape = next(iter(shapes.values()))
        return tf.TensorSpec(shape, getattr(model, "input_dtype", None) or tf.float32)
    raise ValueError("the model has not been called on inputs yet")


def structure_diagram(model: Any) -> Diagram:
    k = keras()
    diagram = Diagram(
        legend={"input": "input", "param": "layer with weights", "op": "layer", "output": "model"}
    )
    layers = list(model.layers)
    if k is not None and isinstance(model, k.Sequential):
        prev = None
        try:
            shape = model.inputs[0].shape
            prev = diagram.add(Node(f"input\n{shape_text(tf.TensorShape(shape))}", "input"))
        except (AttributeError, ValueError, IndexError):
            pass
        for layer in layers:
            key = diagram.add(_layer_node(layer, k))
            if prev is not None:
                diagram.link(prev, key)
            prev = key
        if prev is not None:
            diagram.roots.append(prev)
    elif _outputs(model):  # a functional model: its layers record who fed them
        keys = {id(layer): diagram.add(_layer_node(layer, k)) for layer in layers}
        for layer in layers:
            for node in getattr(layer, "_inbound_nodes", ()):
                for tensor in node.input_tensors:
                    feeder = keys.get(id(tensor._keras_history.operation))
                    if feeder is not None:
                        diagram.link(feeder, keys[id(layer)])
        for tensor in _outputs(model):
            last = keys.get(id(tensor._keras_history.operation))
            if last is not None:
                diagram.roots.append(last)
    else:  # a subclassed model: its call order is code, so show what it holds
        root = diagram.add(Node(f"{model.name}\n{type(model).__name__}", "output"))
        diagram.roots.append(root)
        for layer in layers:
            diagram.link(root, diagram.add(_layer_node(layer, k)))
        diagram.notes.append("subclassed model: layers shown as held, not in call order")
    return diagram


def _outputs(model: Any) -> list[Any]:
    try:
        return list(model.outputs)
    except (AttributeError, ValueError):  # subclassed models have none
        return []


def _layer_node(layer: Any, k: Any) -> Node:
    cls = type(layer).__name__
    if k is not None and isinstance(layer, k.layers.InputLayer):
        return Node(f"{layer.name}\n{shape_text(tf.TensorShape(layer.output.shape))}", "input")
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    lines = [layer.name, cls if activation == "linear" else f"{cls}({activation})"]
    # A layer never called, or called on several inputs, has no single output.
    with contextlib.suppress(Exception):
        lines[1] += f" \N{RIGHTWARDS ARROW} {shape_text(tf.TensorShape(layer.output.shape))}"
    params = 0
    with contextlib.suppress(Exception):  # an unbuilt layer cannot count its weights
        params = int(layer.count_params())
    if params:
        lines.append(f"{params:,} params")
    return Node("\n".join(lines), "param" if params else "op")
