"""keras.ops calls in a functional graph (`x + 3.0`, `ops.relu6(x)`): written inline
in forward, as the arithmetic they are, with no attribute of their own."""

from __future__ import annotations

from typing import Any

import keras

from ..converted import Converted, Layout, Site, repeat

BINARY = {"Add": "+", "Subtract": "-", "Multiply": "*", "Divide": "/", "TrueDivide": "/",
          # Comparisons: masks (Embedding(mask_zero=True)'s is `ids != 0`).
          "NotEqual": "!=", "Equal": "==", "Greater": ">", "GreaterEqual": ">=",
          "Less": "<", "LessEqual": "<=", "LogicalAnd": "&", "LogicalOr": "|"}
UNARY = {"Negative": "-{x0}", "Relu": "F.relu({x0})", "Relu6": "F.relu6({x0})",
         "Sigmoid": "torch.sigmoid({x0})", "Tanh": "torch.tanh({x0})", "Silu": "F.silu({x0})",
         "HardSigmoid": "F.hardsigmoid({x0})", "HardSilu": "F.hardswish({x0})",
         "Exp": "torch.exp({x0})", "Sqrt": "torch.sqrt({x0})", "Abs": "torch.abs({x0})"}


TORCH_DTYPES = {"bool": ", dtype=torch.bool", "float32": ", dtype=torch.float32",
                "int32": ", dtype=torch.int32", "int64": ", dtype=torch.int64"}


def operand(value: Any, index: int, exact: bool = False) -> tuple[str | None, int]:
    """Source for one argument, and the index of the next input tensor."""
    if isinstance(value, keras.KerasTensor):
        return f"{{x{index}}}", index + 1
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value if exact else float(value)), index
    return None, index


def index_source(key: Any) -> str | None:
    """A constant index as Python writes it: `:, 0`, `..., None, 1:4:2`; None otherwise."""
    parts = []
    for item in key if isinstance(key, tuple) else (key,):
        if item is None or item is Ellipsis:
            parts.append("None" if item is None else "...")
        elif isinstance(item, int) and not isinstance(item, bool):
            parts.append(repr(item))
        elif isinstance(item, slice) and all(
                v is None or (isinstance(v, int) and not isinstance(v, bool))
                for v in (item.start, item.stop, item.step)):
            text = ":".join("" if v is None else repr(v) for v in (item.start, item.stop))
            parts.append(text + ("" if item.step is None else f":{item.step!r}"))
        else:
            return None
    return ", ".join(parts)


def reduction(op: Any, site: Site) -> Converted | None:
    """ops.any / ops.all over one axis (Masking's mask is `any(x != value, axis=-1)`)."""
    axis = op.axis[0] if isinstance(op.axis, list | tuple) and len(op.axis) == 1 else op.axis
    if not isinstance(axis, int) or len(site.in_shapes) != 1:
        return None
    keep = ", keepdim=True" if op.keepdims else ""
    method = type(op).__name__.lower()
    return Converted("", ("cl",), "cl", call=f"{{x0}}.{method}(dim={axis % site.rank}{keep})",
                     inline=True)


def convert_op(op: Any, node: Any, site: Site) -> Converted | None:
    name = type(op).__name__
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if not type(op).__module__.startswith("keras.src.ops.") or kwargs:
        return None
    if name == "GetItem" and len(args) == 2 and len(site.in_shapes) == 1:
        index = index_source(args[1])  # a transformer's x[:, 0]: its first token
        if index is None:
            return None
        return Converted("", ("cl",), "cl", call=f"{{x0}}[{index}]", inline=True)
    if name in ("Any", "All") and len(args) == 1:
        return reduction(op, site)
    if name in ("OnesLike", "ZerosLike") and len(args) == 1 and len(site.in_shapes) == 1:
        dtype = TORCH_DTYPES.get(str(op.dtype)) if op.dtype is not None else ""
        if dtype is None:
            return None
        fill = "torch.ones_like" if name == "OnesLike" else "torch.zeros_like"
        same = site.in_layouts[0]
        return Converted("", (same,), same, call=f"{fill}({{x0}}{dtype})", inline=True)
    if (name == "Concatenate" and len(args) == 1 and isinstance(op.axis, int)
            and len(args[0]) == len(site.in_shapes)):
        # Masks of a Concatenate layer's inputs, joined (Keras's compute_mask).
        parts = ", ".join(f"{{x{i}}}" for i in range(len(site.in_shapes)))
        return Converted("", repeat("cl", len(site.in_shapes)), "cl",
                         call=f"torch.cat([{parts}], dim={op.axis % site.rank})", inline=True)
    if name == "ExpandDims" and isinstance(op.axis, int) and len(site.in_shapes) == 1:
        rank = site.rank + 1  # a padding mask's (batch, 1, length): `mask.unsqueeze(1)`
        return Converted("", ("cl",), "cl", call=f"{{x0}}.unsqueeze({op.axis % rank})",
                         inline=True)
    n = len(site.in_shapes)
    layout: Layout = site.in_layouts[0] if n else "cl"
    if name in UNARY and len(args) == 1 and n == 1:
        return Converted("", (layout,), layout, call=UNARY[name], inline=True)
    if name not in BINARY or len(args) != 2:
        return None
    exact = BINARY[name] in ("!=", "==")  # `ids != 0` compares token ids as integers
    a, i = operand(args[0], 0, exact)
    b, _ = operand(args[1], i, exact)
    if a is None or b is None or n == 0:
        return None
    if n == 2 and len(site.in_shapes[0]) != len(site.in_shapes[1]):
        layout = "cl"  # broadcasting between ranks is Keras's own, channels last
    return Converted("", repeat(layout, n), layout, call=f"{a} {BINARY[name]} {b}",
                     inline=True)
