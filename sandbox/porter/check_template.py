"""Rerun the port's proof outside the site: the original Keras model against model.py.

    python check.py MODEL.keras        (or MODEL.h5; run it in this folder)

Needs numpy, torch, safetensors and keras (with a backend), and the model
file the port was made from: both models run on the same seeded random
inputs and their outputs are compared with the port's tolerance
(port_report.json). A port of a snippet: save its model first
(`model.save("model.keras")`). Exits 0 when every output is within
tolerance, 1 when one is not, 2 when the check can't be made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def random_inputs(model, seed=0):
    import keras

    rng = np.random.default_rng(seed)
    vocab = min((layer.input_dim for layer in model._flatten_layers()
                 if isinstance(layer, keras.layers.Embedding)), default=2)
    batch = []
    for tensor in model.inputs:
        shape = [d if d is not None else (2 if i == 0 else 16)
                 for i, d in enumerate(tensor.shape)]
        if "int" in str(tensor.dtype):
            batch.append(rng.integers(0, vocab, size=shape).astype(np.int64))
        else:
            batch.append(rng.standard_normal(shape).astype(np.float32))
    return batch


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    report = json.loads((HERE / "port_report.json").read_text())
    if report["status"] != "proved":
        print(f"this port is {report['status']}: "
              + "; ".join(report.get("notes") or ["see port_report.json"]))
        return 2
    try:
        import keras
        import torch
    except ImportError as exc:
        print(f"this check needs keras (with a backend), torch and safetensors: {exc}")
        return 2
    sys.path.insert(0, str(HERE))
    import model as ported

    module = ported.load(str(HERE / "weights.safetensors"))
    original = keras.saving.load_model(argv[1], compile=False, safe_mode=True)
    batch = random_inputs(original)
    inputs = [torch.from_numpy(a) for a in batch]
    if report.get("layout") == "nchw":
        inputs = [t.permute(0, 3, 1, 2) if t.dim() == 4 else t for t in inputs]
    with torch.no_grad():
        got = module(*inputs)
    got = [t.numpy() for t in (got if isinstance(got, tuple | list) else [got])]
    if report.get("layout") == "nchw":
        got = [np.moveaxis(a, 1, -1) if a.ndim == 4 else a for a in got]
    want = [keras.ops.convert_to_numpy(o) for o in
            keras.tree.flatten(original(batch[0] if len(batch) == 1 else batch))]
    if len(got) != len(want):
        print(f"FAIL: {len(got)} outputs against Keras's {len(want)}")
        return 1
    atol, rtol, ok = report["atol"], report["rtol"], True
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        same = g.shape == w.shape and np.allclose(g, w, atol=atol, rtol=rtol)
        err = float(np.abs(g - w).max()) if g.shape == w.shape and g.size else float("nan")
        print(f"output {i}: shape {tuple(w.shape)}, max abs err {err:.3g}: "
              f"{'ok' if same else 'FAIL'}")
        ok = ok and same
    print(f"{report['class_name']}: {'proved' if ok else 'NOT proved'} "
          f"(atol {atol:g}, rtol {rtol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
