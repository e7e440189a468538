"""`make bench`, the porter's part: port and prove MobileNetV2 and ResNet50 end to end.

Each model (`keras.applications`, weights=None) is saved to a `.keras` file,
then ported through `Pool.port`, the executor call the site and `sidebyside
port` make: a sandboxed run loads, converts and proves it, and the trusted
side checks and writes its files. Beside it, in the same run: Keras alone
loading that file and running the model once. Floors on the 2-core
reference machine: MobileNetV2 ≤ 20 s, ResNet50 ≤ 60 s.

    python bench/port.py [--onnx] [MODEL ...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLOORS_S = {"MobileNetV2": 20.0, "ResNet50": 60.0}


def save_model(name: str, folder: Path) -> Path:
    import keras

    model = getattr(keras.applications, name)(weights=None)
    path = folder / f"{name}.keras"
    model.save(path)
    return path


def keras_alone(path: Path) -> float:
    """Load the file and run the model once on one random image: seconds."""
    import keras
    import numpy as np

    started = time.perf_counter()
    model = keras.saving.load_model(path, compile=False)
    shape = [2 if d is None else d for d in model.inputs[0].shape]
    model(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return time.perf_counter() - started


async def port_all(paths: dict[str, Path], onnx: bool) -> dict[str, tuple[float, object]]:
    from sandbox.fairqueue import Client
    from sandbox.limits import Limits
    from sandbox.pool import Pool
    from sandbox.protocol import PortOrder

    pool = Pool(Limits(), size=1, spares_memory_mb=64)
    await pool.start()
    client = Client("bench", "local", capped=False)
    timings: dict[str, tuple[float, object]] = {}
    try:
        for name, path in paths.items():
            with tempfile.TemporaryDirectory(prefix="port-") as out:
                started = time.perf_counter()
                report = await pool.port(PortOrder(filename=path.name, onnx=onnx), path,
                                         Path(out), client)
                timings[name] = (time.perf_counter() - started, report)
    finally:
        await pool.stop()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=list(FLOORS_S))
    parser.add_argument("--onnx", action="store_true", help="the ONNX comparison too")
    args = parser.parse_args()
    # The pool says where each port's time went: its run, then checking its files.
    logging.basicConfig(format="  %(message)s")
    logging.getLogger("sidebyside.pool").setLevel(logging.INFO)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-port-") as folder:
        paths = {name: save_model(name, Path(folder)) for name in args.models}
        alone = {name: keras_alone(path) for name, path in paths.items()}
        ported = asyncio.run(port_all(paths, args.onnx))
    print(f"\nPorter: port and prove through the pool{' (with --onnx)' if args.onnx else ''}")
    print(f"{'model':<14}{'port+prove':>12}{'in the run':>12}{'keras alone':>13}"
          f"{'floor':>8}  status")
    for name in args.models:
        seconds, report = ported[name]
        floor = FLOORS_S.get(name)
        met = floor is None or seconds <= floor
        ok = ok and met and getattr(report, "status", "") == "proved"
        run_s = getattr(report, "wall_ms", 0.0) / 1000
        print(f"{name:<14}{seconds:>11.1f}s{run_s:>11.1f}s{alone[name]:>12.2f}s"
              f"{'' if floor is None else f'{floor:>7.0f}s'}  {getattr(report, 'status', '?')}"
              f"{'' if met else '  OVER THE FLOOR'}")
        error = getattr(report, "error", None)
        if error is not None:
            print(f"    {error.type}: {error.message}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
