"""`sidebyside port MODEL`: a Keras model to PyTorch through a sandbox pool, as the web does.

The model goes through the same executor call the site makes (`Pool.port`):
loaded, converted and proved in a sandboxed run, its files checked on the way
out. A `.py` MODEL is a snippet that builds the model, as on the page.
`--inputs` hands the run the user's own `.npy` / `.npz`, as the page does.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from app.settings import Settings
from sandbox.fairqueue import Client
from sandbox.pool import Pool
from sandbox.protocol import (
    INPUTS_SUFFIXES,
    MODEL_SUFFIXES,
    PortLayout,
    PortOrder,
    PortReport,
)

CLIENT = Client(learner="port-command", address="local", capped=False)


def order_for(model: Path, layout: PortLayout, atol: float, rtol: float,
              onnx: bool, inputs: Path | None = None) -> tuple[PortOrder, Path | None]:
    common = {"layout": layout, "atol": atol, "rtol": rtol, "onnx": onnx,
              "inputs": inputs.suffix.lower() if inputs is not None else None}
    if model.suffix == ".py":
        return PortOrder(code=model.read_text(), **common), None  # type: ignore[arg-type]
    return PortOrder(filename=model.name, **common), model  # type: ignore[arg-type]


async def port_through_pool(settings: Settings, order: PortOrder, model: Path | None,
                            out_dir: Path, inputs: Path | None = None) -> PortReport:
    # One slot, the smallest reserve: the port's own spare is made for it.
    pool = Pool(settings.limits(), size=1, insecure=settings.insecure_no_sandbox,
                spares_memory_mb=64)
    await pool.start()
    try:
        return await pool.port(order, model, out_dir, CLIENT, inputs)
    finally:
        await pool.stop()


def _error(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def summary(report: PortReport, out_dir: Path | None) -> str:
    lines = [f"{report.class_name or 'port'}: {report.status}"]
    if report.error is not None:
        where = f" (line {report.error.line})" if report.error.line else ""
        lines.append(f"  {report.error.type}{where}: {report.error.message}")
        return "\n".join(lines)
    passed = sum(r.status == "pass" for r in report.layers)
    lines.append(f"  layers: {passed}/{len(report.layers)} within atol {report.atol:g}, "
                 f"rtol {report.rtol:g}; max abs err {_error(report.max_abs_err)}, "
                 f"max rel err {_error(report.max_rel_err)}")
    if report.batches:
        lines.append(f"  proved on: {'; '.join(report.batches)}")
    for row in report.layers:
        if row.status == "fail":
            lines.append(f"  FAIL {row.name} ({row.class_name}) → {row.attribute}: "
                         f"abs {_error(row.max_abs_err)}, rel {_error(row.max_rel_err)}")
    if report.traps:
        lines.append(f"  traps ({len(report.traps)}):")
        lines += [f"    {t.layer}: {t.text}" for t in report.traps]
    if report.unsupported:
        lines.append("  unsupported (stubs to write by hand): "
                     + ", ".join(f"{s.name} ({s.class_name})" for s in report.unsupported))
    if report.onnx is not None:
        onnx = report.onnx
        lines.append(f"  onnx: {onnx.status}, max abs err {_error(onnx.max_abs_err)}"
                     + (f" ({onnx.message})" if onnx.message else ""))
    lines += [f"  {note}" for note in report.notes]
    if out_dir is not None:
        lines.append(f"  wrote {out_dir}/: model.py, weights.safetensors, port_report.json, "
                     "check.py, port.zip")
    return "\n".join(lines)


def run_port_command(model: Path, out: Path | None, layout: PortLayout, atol: float,
                     rtol: float, onnx: bool, inputs: Path | None = None) -> int:
    for given in (model, inputs):
        if given is not None and not given.is_file():
            print(f"sidebyside: no such file: {given}", file=sys.stderr)
            return 2
    if inputs is not None and inputs.suffix.lower() not in INPUTS_SUFFIXES:
        print("sidebyside: --inputs is a .npy file (one input) or a .npz file (one array "
              "per input)", file=sys.stderr)
        return 2
    if model.suffix.lower() not in (*MODEL_SUFFIXES, ".py"):
        print("sidebyside: MODEL is a .keras or .h5 file, or a .py snippet that builds one",
              file=sys.stderr)
        return 2
    out_dir = out or Path(f"{model.stem}-torch")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        print(f"sidebyside: {out_dir} exists and is not an empty folder", file=sys.stderr)
        return 2
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        order, path = order_for(model, layout, atol, rtol, onnx, inputs)
        report = asyncio.run(port_through_pool(Settings(), order, path, out_dir.resolve(),
                                               inputs))
    except BaseException:
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    wrote = any(out_dir.iterdir())
    if made and not wrote:
        out_dir.rmdir()
    print(summary(report, out_dir if wrote else None))
    return 0 if report.status == "proved" else 1
