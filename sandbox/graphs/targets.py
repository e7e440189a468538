"""Which drawings a run gets: the named target, or a sensible default.

Each plan is a list of jobs `(kind, title, builder)`; a builder is called
later, under the drawing's own error handling, and a plain string in its
place is a note telling the learner why there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.graphs.diagram import Diagram

Job = tuple[str, str, "Callable[[], Diagram] | str"]

NO_TENSOR = (
    "no tensor here has an autograd graph: none was computed from one with requires_grad=True"
)
EAGER = (
    "eager code leaves no graph: TensorFlow ran each op as it came. "
    "Wrap the step in @tf.function to see the graph it traces."
)


def _public(namespace: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in namespace.items() if not k.startswith("_")]


def plan_torch(namespace: dict[str, Any], target: str | None) -> list[Job]:
    import torch

    from sandbox.graphs import torch_graph as tg

    def autograd(name: str, t: torch.Tensor) -> Job:
        return (
            "autograd",
            f"Autograd graph of {name}",
            lambda: tg.autograd_diagram(t, name, namespace),
        )

    def structure(name: str, m: torch.nn.Module) -> Job:
        return (
            "structure",
            f"Structure of {name} ({type(m).__name__})",
            lambda: tg.structure_diagram(m),
        )

    if target is not None:
        value = namespace.get(target)
        if isinstance(value, torch.Tensor):
            if value.grad_fn is None and not value.requires_grad:
                return [("autograd", f"Autograd graph of {target}", f"{target}: {NO_TENSOR}")]
            return [autograd(target, value)]
        if isinstance(value, torch.nn.Module):
            return [structure(target, value)]
        return [("autograd", target, _not_drawable(target, value, "a tensor or an nn.Module"))]
    jobs: list[Job] = []
    tensors = [(k, v) for k, v in _public(namespace) if isinstance(v, torch.Tensor) and v.grad_fn]
    if tensors:
        jobs.append(autograd(*tensors[-1]))
    else:
        jobs.append(("autograd", "Autograd graph", NO_TENSOR))
    modules = [(k, v) for k, v in _public(namespace) if isinstance(v, torch.nn.Module)]
    model = _outermost(
        modules, lambda m: list(m.modules()), lambda m: any(True for _ in m.parameters())
    )
    if model is not None:
        jobs.append(structure(*model))
    return jobs


def plan_tf(namespace: dict[str, Any], target: str | None) -> list[Job]:
    import tensorflow as tf

    from sandbox.graphs import keras_graph as kg
    from sandbox.graphs import tf_graph as tg
    from sandbox.graphs import tracking

    names = kg.handle_names(namespace)

    def traced(title: str, concrete: Callable[[], Any]) -> Job:
        return ("tf_function", title, lambda: tg.function_diagram(concrete(), names))

    def model_jobs(name: str, model: Any) -> list[Job]:
        return [
            traced(f"{name} traced as a tf.function", lambda: kg.model_function(model)),
            (
                "structure",
                f"Layers of {name} ({type(model).__name__})",
                lambda: kg.structure_diagram(model),
            ),
        ]

    def called(title: str, call: tracking.Call) -> Job:
        return traced(title, lambda: call.function.get_concrete_function(*call.args, **call.kwargs))

    if target is not None:
        value = namespace.get(target)
        if isinstance(value, tf.types.experimental.PolymorphicFunction):
            call = tracking.last_call(value)
            if call is not None:
                return [called(f"tf.function {target}", call)]
            if value.input_signature is not None:
                return [traced(f"tf.function {target}", value.get_concrete_function)]
            return [
                (
                    "tf_function",
                    f"tf.function {target}",
                    f"{target} was never called, so nothing was traced",
                )
            ]
        if isinstance(value, tf.types.experimental.ConcreteFunction):
            return [traced(f"concrete function {target}", lambda: value)]
        if kg.is_model(value):
            return model_jobs(target, value)
        if isinstance(value, (tf.Tensor, tf.Variable)):
            return [("tf_function", target, f"{target}: {EAGER}")]
        return [
            ("tf_function", target, _not_drawable(target, value, "a tf.function or a Keras model"))
        ]
    jobs: list[Job] = []
    call = tracking.last_call()
    if call is not None:
        jobs.append(called(f"tf.function {_function_title(namespace, call.function)}", call))
    models = [(k, v) for k, v in _public(namespace) if kg.is_model(v)]
    model = _outermost(models, lambda m: list(m._flatten_layers()), lambda m: bool(m.weights))
    if model is not None:
        jobs.extend(model_jobs(*model)[1 if jobs else 0 :])
    return jobs or [("tf_function", "No graph", EAGER)]


def _outermost(
    named: list[tuple[str, Any]], parts: Callable[[Any], list[Any]], weighty: Callable[[Any], bool]
) -> tuple[str, Any] | None:
    """The last-bound of the objects no other one contains, preferring those with weights."""
    inner = {id(p) for _, obj in named for p in parts(obj) if p is not obj}
    top = [(k, v) for k, v in named if id(v) not in inner]
    with_weights = [(k, v) for k, v in top if weighty(v)]
    chosen = with_weights or top
    return chosen[-1] if chosen else None


def _function_title(namespace: dict[str, Any], function: Any) -> str:
    bound = next((k for k, v in _public(namespace) if v is function), None)
    if bound is not None:
        return bound
    name = getattr(function, "__name__", "function")
    code = getattr(getattr(function, "python_function", None), "__code__", None)
    # Snippets are compiled under names like "<snippet>"; library code has real files.
    if code is not None and not code.co_filename.startswith("<"):
        return f"{name} (from library code)"
    return name


def _not_drawable(name: str, value: Any, wanted: str) -> str:
    if value is None:
        return f"{name} is not defined by the snippet"
    return f"{name} is a {type(value).__name__}, not {wanted}"
