"""What PyTorch built: the autograd graph behind a tensor, and a module's structure.

The autograd graph is walked from the tensor's `grad_fn` through
`next_functions`, then drawn in forward order (inputs on top, the tensor at
the bottom) because that is how the snippet reads. Each use of a leaf gets
its own node: one parameter feeding hundreds of ops as a single node makes
`dot`'s layout time explode.
"""

from __future__ import annotations

import operator
import re
from collections import deque
from typing import Any

import torch

from sandbox.graphs.diagram import Diagram, Node

WALK_LIMIT = 20_000  # grad_fn nodes visited before the walk gives up
_BACKWARD = re.compile(r"Backward\d*$")
_SAVED: dict[type, tuple[str, ...]] = {}


def shape_text(shape: Any) -> str:
    dims = tuple(shape)
    return "scalar" if not dims else "\N{MULTIPLICATION SIGN}".join(str(d) for d in dims)


def tensor_names(namespace: dict[str, Any]) -> dict[int, str]:
    """id(tensor) -> the name a reader knows it by: its own variable, else module.path."""
    names: dict[int, str] = {}
    modules = [(k, v) for k, v in namespace.items() if isinstance(v, torch.nn.Module)]
    # The biggest module first, so `model.fc1.weight` wins over `fc1.weight`.
    modules.sort(key=lambda kv: -sum(1 for _ in kv[1].parameters()))
    for mod_name, module in modules:
        for p_name, param in module.named_parameters():
            names.setdefault(id(param), f"{mod_name}.{p_name}")
    for name, value in namespace.items():
        if isinstance(value, torch.Tensor) and not name.startswith("_"):
            names[id(value)] = name
    return names


def op_label(fn: Any) -> str:
    name = _BACKWARD.sub("", fn.name().rpartition("::")[2])
    metadata = getattr(fn, "_input_metadata", ())
    if metadata:
        name += "\n" + shape_text(metadata[0].shape)
    return name


def autograd_diagram(tensor: torch.Tensor, title: str, namespace: dict[str, Any]) -> Diagram:
    names = tensor_names(namespace)
    diagram = Diagram()
    out = diagram.add(Node(f"{title}\n{shape_text(tensor.shape)}", "output"))
    diagram.roots.append(out)
    if tensor.grad_fn is None:
        leaf = diagram.add(Node(_leaf_label(tensor, names), "param"))
        diagram.link(leaf, out)
        return diagram
    keys: dict[Any, str] = {}
    root = _op_node(diagram, keys, tensor.grad_fn)
    diagram.link(root, out)
    freed = False
    queue: deque[Any] = deque([tensor.grad_fn])
    seen = {tensor.grad_fn}
    while queue:
        fn = queue.popleft()
        key = keys[fn]
        for nxt, _ in fn.next_functions:
            if nxt is None:
                continue
            if hasattr(nxt, "variable"):  # AccumulateGrad: a leaf, drawn afresh per use
                leaf = diagram.add(Node(_leaf_label(nxt.variable, names), "param"))
                diagram.link(leaf, key)
                continue
            diagram.link(_op_node(diagram, keys, nxt), key)
            if nxt not in seen:
                seen.add(nxt)
                if len(seen) >= WALK_LIMIT:
                    diagram.notes.append(f"the walk stopped after {WALK_LIMIT:,} ops")
                    queue.clear()
                    break
                queue.append(nxt)
        freed |= _saved_inputs(diagram, fn, key, names)
    if freed:
        diagram.notes.append("inputs without grad are not shown: .backward() freed them")
    return diagram


def _op_node(diagram: Diagram, keys: dict[Any, str], fn: Any) -> str:
    if fn not in keys:
        keys[fn] = diagram.add(Node(op_label(fn), "op", tooltip=fn.name()))
    return keys[fn]


def _leaf_label(tensor: torch.Tensor, names: dict[int, str]) -> str:
    return f"{names.get(id(tensor), 'leaf')}\n{shape_text(tensor.shape)}"


def _saved_attributes(cls: type) -> tuple[str, ...]:
    # dir() is the slow part of a walk; each backward function class is looked at once.
    if cls not in _SAVED:
        _SAVED[cls] = tuple(a for a in dir(cls) if a.startswith("_saved_"))
    return _SAVED[cls]


def _saved_inputs(diagram: Diagram, fn: Any, key: str, names: dict[int, str]) -> bool:
    """Draw the snippet's own grad-less tensors that this op saved; True if they were freed."""
    for attr in _saved_attributes(type(fn)):
        try:
            value = getattr(fn, attr)
        except RuntimeError:  # saved tensors are freed by backward()
            return True
        if isinstance(value, torch.Tensor) and not value.requires_grad and id(value) in names:
            node = diagram.add(Node(f"{names[id(value)]}\n{shape_text(value.shape)}", "input"))
            diagram.link(node, key)
    return False


def structure_diagram(module: torch.nn.Module) -> Diagram:
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:  # data-dependent control flow and the like: show the tree
        return _tree_diagram(module)
    diagram = Diagram(
        legend={"input": "input", "param": "module", "op": "function", "output": "output"}
    )
    keys: dict[Any, str] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            keys[node] = diagram.add(Node(node.target, "input"))
        elif node.op == "output":
            keys[node] = diagram.add(Node("output", "output"))
            diagram.roots.append(keys[node])
        elif node.op == "call_module":
            keys[node] = diagram.add(_module_node(node.target, module.get_submodule(node.target)))
        elif node.op == "get_attr":
            keys[node] = diagram.add(Node(str(node.target), "param"))
        else:
            keys[node] = diagram.add(Node(_function_name(node.target), "op"))
        for arg in node.all_input_nodes:
            diagram.link(keys[arg], keys[node])
    return diagram


def _module_node(name: str, module: torch.nn.Module) -> Node:
    params = sum(p.numel() for p in module.parameters())
    lines = [name, type(module).__name__]
    extra = module.extra_repr()
    if extra:
        lines.append(extra)
    if params:
        lines.append(f"{params:,} params")
    return Node("\n".join(lines), "param" if params else "op")


def _function_name(target: Any) -> str:
    if isinstance(target, str):
        return f".{target}()"
    if target is operator.getitem:
        return "[ ]"
    return getattr(target, "__name__", type(target).__name__)


def _tree_diagram(module: torch.nn.Module) -> Diagram:
    diagram = Diagram(legend={"output": "model", "param": "module with parameters", "op": "module"})
    root = diagram.add(Node(type(module).__name__, "output"))
    diagram.roots.append(root)
    diagram.notes.append("forward() could not be traced: modules shown by nesting")
    queue: deque[tuple[str, torch.nn.Module, str]] = deque([("", module, root)])
    while queue and len(diagram.nodes) < WALK_LIMIT:
        prefix, parent, parent_key = queue.popleft()
        for name, child in parent.named_children():
            key = diagram.add(_module_node(prefix + name, child))
            diagram.link(parent_key, key)
            queue.append((prefix + name + ".", child, key))
    return diagram
