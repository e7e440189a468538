"""`prove()`: run the generated module and the Keras model on the same inputs and
compare every layer's output, Keras's replayed call by call, PyTorch's caught by
forward hooks on the attributes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import keras
import numpy as np
import torch
import torch.nn.functional as F

from .graph import is_nested_model, walk
from .ported import LayerPort, Port

RowStatus = Literal["pass", "fail", "not run", "stub"]
Status = Literal["proved", "partial", "failed"]
Arrays = list[np.ndarray]
GIVEN_SAMPLES_PER_BATCH = 8  # the user's inputs run in batches of this many at most


@dataclass
class Row:
    name: str
    class_name: str
    attribute: str
    shape: tuple[int, ...] = ()
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0  # relative to the largest Keras value of the output
    status: RowStatus = "not run"


@dataclass
class Proof:
    status: Status
    rows: list[Row]
    outputs: list[Row]  # the module's return values against model(x)
    error: str | None = None
    batches: int = 0
    notes: list[str] = field(default_factory=list)


def vocabulary(model: Any) -> int | None:
    """The indices an integer input may hold: the smallest Embedding's (None: no Embedding)."""
    return min((layer.input_dim for layer in model._flatten_layers()
                if isinstance(layer, keras.layers.Embedding)), default=None)


def random_inputs(model: Any, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    vocab = vocabulary(model) or 2
    batch = []
    for tensor in model.inputs:
        # Two samples; a free length or size gets 16.
        shape = [d if d is not None else (2 if i == 0 else 16)
                 for i, d in enumerate(tensor.shape)]
        if "int" in str(tensor.dtype):
            batch.append(rng.integers(0, vocab, size=shape).astype(np.int64))
        else:
            batch.append(rng.standard_normal(shape).astype(np.float32))
    return batch


def replay(model: Any, values: list[Any], record: dict[tuple[str, ...], list[Arrays]],
           prefix: tuple[str, ...] = ()) -> list[Any]:
    """Run the Keras graph call by call, keeping every layer's outputs."""
    graph = walk(model)
    held: dict[int, Any] = dict(zip(graph.inputs, values, strict=True))
    for call in graph.calls:
        layer = call.layer
        if is_nested_model(layer):
            outs = replay(layer, [held[t] for t in call.inputs], record, (*prefix, layer.name))
        else:
            args, kwargs = call.node.arguments.fill_in(held)
            outs = keras.tree.flatten(layer(*args, **kwargs))
        held.update(zip(call.outputs, outs, strict=True))
        record[(*prefix, layer.name)].append([keras.ops.convert_to_numpy(o) for o in outs])
    return [held[t] for t in graph.outputs]


def as_keras(lp: LayerPort, output: Any) -> Arrays:
    y = eval(lp.post.replace("{y}", "y"), {"F": F, "torch": torch}, {"y": output})
    ys = list(y) if isinstance(y, tuple | list) else [y]
    arrays = [t.detach().numpy() for t in ys]
    if lp.layout == "cf":
        arrays = [np.moveaxis(a, 1, -1) if a.ndim >= 3 else a for a in arrays]
    return arrays


def compare(row: Row, got: Arrays, want: Arrays, atol: float, rtol: float) -> None:
    row.shape = tuple(want[0].shape)
    ok = len(got) == len(want)
    for g, w in zip(got, want, strict=False):
        if g.shape != w.shape:
            ok, row.max_abs_err, row.max_rel_err = False, float("inf"), float("inf")
            continue
        err = np.abs(g.astype(np.float64) - w.astype(np.float64))
        worst = float(err.max()) if err.size else 0.0
        scale = float(np.abs(w).max()) if w.size else 0.0
        row.max_abs_err = max(row.max_abs_err, worst)
        row.max_rel_err = max(row.max_rel_err, worst / max(scale, 1e-12))
        ok = ok and bool(np.allclose(g, w, rtol=rtol, atol=atol))
    if row.status != "fail":
        row.status = "pass" if ok else "fail"


def load_module(port: Port) -> torch.nn.Module:
    namespace: dict[str, Any] = {"__name__": "porter_model"}
    exec(compile(port.source, "model.py", "exec"), namespace)
    module: torch.nn.Module = namespace[port.class_name]()
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                            for k, v in port.state_dict.items()})
    return module.eval()


def to_torch(port: Port, batch: Arrays) -> list[torch.Tensor]:
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in batch]
    if port.layout == "nchw":
        tensors = [t.permute(0, 3, 1, 2) if t.dim() == 4 else t for t in tensors]
    return tensors


def in_chunks(batch: Arrays, samples: int) -> list[Arrays]:
    """A batch as batches of at most `samples`: every layer's outputs of one batch are
    held at once, on both sides, so a user's hundred images would not fit a port."""
    size = len(batch[0])
    return [[a[start:start + samples] for a in batch] for start in range(0, size, samples)]


def prove(model: Any, port: Port, *, inputs: Sequence[np.ndarray] | np.ndarray | None = None,
          atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0) -> Proof:
    batches = [random_inputs(model, seed)]
    if inputs is not None:
        given = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        batches += in_chunks(given, GIVEN_SAMPLES_PER_BATCH)
    layers = [lp for lp in port.layers if lp.attribute is not None]
    rows = {lp.path: Row(lp.name, lp.class_name, lp.attribute or "",
                         status="stub" if lp.stub else "not run") for lp in layers}
    outputs: list[Row] = []
    try:
        module = load_module(port)
    except Exception as exc:  # a port whose module cannot be built is a failed proof
        return Proof("failed", list(rows.values()), [], f"{type(exc).__name__}: {exc}")
    error = None
    for batch in batches:
        caught: dict[str, list[Any]] = defaultdict(list)
        hooks = [module.get_submodule(lp.attribute).register_forward_hook(
            lambda _m, _i, out, seen=caught[lp.attribute]: seen.append(out))
            for lp in layers if lp.attribute]
        result: Any = None
        try:
            with torch.no_grad():
                result = module(*to_torch(port, batch))
        except NotImplementedError as exc:  # a stub: the proof covers what ran before it
            if not port.unsupported:
                error = f"NotImplementedError: {exc}"
        except Exception as exc:  # the proof reports a port that crashes
            error = f"{type(exc).__name__}: {exc}"
        finally:
            for hook in hooks:
                hook.remove()
        record: dict[tuple[str, ...], list[Arrays]] = defaultdict(list)
        replay(model, [keras.ops.convert_to_tensor(a) for a in batch], record)
        for lp in layers:
            row = rows[lp.path]
            if lp.stub:
                continue
            for got, want in zip(caught[lp.attribute or ""], record[lp.path], strict=False):
                compare(row, as_keras(lp, got), want, atol, rtol)
        if result is not None:
            outputs = check_outputs(model, port, batch, result, outputs, atol, rtol)
    return Proof(status(rows.values(), outputs, port, error), list(rows.values()), outputs,
                 error, len(batches), notes(port))


def notes(port: Port) -> list[str]:
    said = []
    if port.unsupported:
        names = ", ".join(repr(lp.name) for lp in port.unsupported)
        said.append(f"stubs to write by hand: {names}; layers after the first are not run")
    inline = [lp.name for lp in port.layers if lp.inline]
    if inline:
        said.append(f"{len(inline)} keras.ops calls are written inline and proved through "
                    "the layers that read them")
    return said


def check_outputs(model: Any, port: Port, batch: Arrays, result: Any, rows: list[Row],
                  atol: float, rtol: float) -> list[Row]:
    keras_in = batch[0] if len(batch) == 1 else batch
    want = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(keras_in))]
    got_t = list(result) if isinstance(result, tuple | list) else [result]
    got = [t.detach().numpy() for t in got_t]
    if port.layout == "nchw":
        got = [np.moveaxis(a, 1, -1) if a.ndim == 4 else a for a in got]
    if not rows:
        rows = [Row(f"output {i}", "", "forward()") for i in range(len(want))]
    for row, g, w in zip(rows, got, want, strict=False):
        compare(row, [g], [w], atol, rtol)
    if len(got) != len(want):
        rows[0].status = "fail"
    return rows


def status(rows: Any, outputs: list[Row], port: Port, error: str | None) -> Status:
    rows = list(rows)
    if error or any(r.status == "fail" for r in [*rows, *outputs]):
        return "failed"
    if port.unsupported:
        return "partial"
    if any(r.status != "pass" for r in rows) or not outputs:
        return "failed"
    return "proved"
