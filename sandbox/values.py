"""Describe the values a snippet left behind, and capture some as arrays.

Framework types are recognised by module name so this file imports
neither framework: it runs in the run process, where both are loaded.
"""

from __future__ import annotations

import base64
import numbers
import sys
from typing import Any

import numpy as np
from pydantic import ValidationError

from sandbox.protocol import (
    MAX_PREVIEW_CHARS,
    MAX_SHAPE_DIMS,
    MAX_SHORT_CHARS,
    CapturedArray,
    ValueInfo,
)

# How much of a namespace a result shows: fewer values, and shorter
# previews, than the protocol's caps allow (MAX_VALUES, MAX_PREVIEW_CHARS).
SHOWN_VALUES = 40
PREVIEW_CHARS = 400
MAX_CAPTURE_ELEMENTS = 4_000_000


def _kind(value: Any) -> str | None:
    cls = type(value)
    module, name = cls.__module__, cls.__name__
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, np.ndarray):
        return "ndarray"
    if isinstance(value, np.generic):
        return "numpy scalar"
    if module.startswith("torch") and name in ("Tensor", "Parameter"):
        return f"torch.{name}"
    if module.startswith("tensorflow") and name in ("EagerTensor",):
        return "tf.Tensor"
    if module.startswith("tensorflow") and "Variable" in name:
        return "tf.Variable"
    if module.startswith("keras") and name == "Variable":
        return "keras.Variable"
    return None


def to_numpy(value: Any) -> np.ndarray:
    """The value as a host NumPy array, the way lessons compare them."""
    module = type(value).__module__
    if module.startswith("torch"):
        torch = sys.modules["torch"]
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def _device(value: Any) -> str | None:
    device = getattr(value, "device", None)
    if device is None:
        return None
    text = str(device)
    # TF spells it /job:localhost/replica:0/task:0/device:CPU:0
    return text.rsplit("device:", 1)[-1] if "device:" in text else text


def _preview(array: np.ndarray) -> str:
    text = np.array2string(array, threshold=24, edgeitems=3, precision=4, max_line_width=72)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _short(text: str | None) -> str | None:
    """Cut to the protocol's cap: a long name or dtype is cut, not refused."""
    return None if text is None else text[:MAX_SHORT_CHARS]


def describe(name: str, value: Any) -> ValueInfo | None:
    kind = _kind(value)
    if kind is None:
        return None
    name = name[:MAX_SHORT_CHARS]
    if kind in ("number", "bool"):
        return ValueInfo(name=name, kind=kind, dtype=type(value).__name__,
                         preview=repr(value)[:PREVIEW_CHARS])
    try:
        array = to_numpy(value)
    except Exception as exc:  # e.g. a tensor on a device we can't copy from
        return ValueInfo(name=name, kind=kind, preview=f"<unreadable: {type(exc).__name__}>")
    dtype = str(getattr(value, "dtype", array.dtype)).replace("torch.", "").replace(
        "<dtype: '", "").replace("'>", "")
    requires_grad = None
    if kind.startswith("torch"):
        requires_grad = bool(value.requires_grad)
    elif kind == "tf.Variable":
        requires_grad = bool(getattr(value, "trainable", False))
    return ValueInfo(name=name, kind=kind,
                     shape=list(array.shape) if array.ndim <= MAX_SHAPE_DIMS else None,
                     dtype=_short(dtype), device=_short(_device(value)),
                     preview=_preview(array), requires_grad=requires_grad)


def describe_namespace(namespace: dict[str, Any],
                       skip: set[str]) -> tuple[list[ValueInfo], int]:
    """The first SHOWN_VALUES values the snippet left, and how many more there are."""
    found: list[ValueInfo] = []
    more = 0
    for name, value in namespace.items():
        if name.startswith("_") or name in skip:
            continue
        if len(found) >= SHOWN_VALUES:
            more += _kind(value) is not None  # counted, not described
            continue
        info = describe(name, value)
        if info is not None:
            found.append(info)
    return found, more


def capture(namespace: dict[str, Any], expressions: dict[str, str]) -> dict[str, CapturedArray]:
    """Evaluate each expression in the snippet's namespace and pack it as raw bytes."""
    captured: dict[str, CapturedArray] = {}
    for name, expression in expressions.items():
        try:
            array = np.ascontiguousarray(to_numpy(eval(expression, namespace)))
        except NameError:
            captured[name] = _missing(f"`{expression}` is not defined at the end of the snippet")
            continue
        except Exception as exc:
            why = f"`{expression}` failed: {type(exc).__name__}: {exc}"
            captured[name] = _missing(why)
            continue
        if array.dtype == object or array.size > MAX_CAPTURE_ELEMENTS:
            why = f"`{expression}` is not a numeric array of manageable size"
            captured[name] = _missing(why)
            continue
        shape, dtype = list(array.shape), array.dtype.str
        data = base64.b64encode(array.tobytes()).decode()
        try:
            captured[name] = CapturedArray(shape=shape, dtype=dtype, data_b64=data)
        except ValidationError:  # past the cap: the supervisor ends the run, ResultTooLarge
            captured[name] = CapturedArray.model_construct(shape=shape, dtype=dtype,
                                                           data_b64=data)
    return captured


def _missing(why: str) -> CapturedArray:
    return CapturedArray(missing=why[:MAX_PREVIEW_CHARS])
