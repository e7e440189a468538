"""`--onnx`: both models exported to ONNX and run in onnxruntime on the proof's inputs.

The Keras model goes through `model.export(format="onnx")`, the module through
`torch.onnx.export`; the two graphs then run in one runtime, so a difference
left is the exporters', not the frameworks'. Runs in the sandbox, in the run's
scratch folder. An exporter that fails is reported, never a failed port.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.protocol import OnnxComparison, PortOrder

from .proof import load_module, random_inputs, to_torch


def _run(path: Path, batch: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [np.asarray(o) for o in session.run(None, dict(zip(names, batch, strict=True)))]


def _export_keras(model: Any, batch: list[np.ndarray], path: Path) -> None:
    model(batch[0] if len(batch) == 1 else batch)  # Keras exports only a model called once
    model.export(str(path), format="onnx", verbose=False)


def _export_torch(ported: Any, batch: list[np.ndarray], path: Path) -> None:
    import torch

    module = load_module(ported)
    with torch.no_grad():
        torch.onnx.export(module, tuple(to_torch(ported, batch)), str(path), dynamo=False)


def compare_onnx(model: Any, ported: Any, order: PortOrder) -> OnnxComparison:
    batch = random_inputs(model, seed=0)
    with tempfile.TemporaryDirectory(prefix="onnx-") as folder:
        keras_path, torch_path = Path(folder, "keras.onnx"), Path(folder, "torch.onnx")
        try:
            _export_keras(model, batch, keras_path)
            want = _run(keras_path, batch)
        except Exception as exc:
            return OnnxComparison(status="error", message=f"Keras's ONNX export or run "
                                  f"failed: {type(exc).__name__}: {exc}"[:8000])
        try:
            _export_torch(ported, batch, torch_path)
            torch_batch = [t.numpy() for t in to_torch(ported, batch)]
            got = _run(torch_path, torch_batch)
        except Exception as exc:
            return OnnxComparison(status="error", message=f"PyTorch's ONNX export or run "
                                  f"failed: {type(exc).__name__}: {exc}"[:8000])
    if ported.layout == "nchw":
        got = [np.moveaxis(a, 1, -1) if a.ndim == 4 else a for a in got]
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=False)):
        return OnnxComparison(status="fail", message="the two graphs' outputs differ in "
                              f"shape: {[g.shape for g in got]} against {[w.shape for w in want]}")
    worst = max((float(np.abs(g.astype(np.float64) - w).max()) if g.size else 0.0
                 for g, w in zip(got, want, strict=True)), default=0.0)
    scale = max((float(np.abs(w).max()) if w.size else 0.0 for w in want), default=0.0)
    close = all(np.allclose(g, w, atol=order.atol, rtol=order.rtol)
                for g, w in zip(got, want, strict=True))
    return OnnxComparison(status="pass" if close else "fail", max_abs_err=worst,
                          max_rel_err=worst / max(scale, 1e-12))
