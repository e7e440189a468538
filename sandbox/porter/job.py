"""A port as a run: the model in, an archive of its files out (in the sandbox, never the web).

    pool ──RunOrder(port=PortOrder) + model, archive and inputs fds──> run: `run_port`
        model: the uploaded file, read-only (absent for a snippet)
        archive: a file the trusted side made; the run's RLIMIT_FSIZE bounds it
        inputs: the user's .npy/.npz, read-only (absent unless `order.inputs`)

The run loads the model (`loading.py`: safe mode, placeholders) or runs the
snippet that builds one, ports it, proves it, optionally compares both in
ONNX, and writes one uncompressed zip: `model.py`, `weights.safetensors`,
`port_report.json`. The trusted side (`sandbox/port_files.py`) trusts none
of it: it checks each member before a file reaches the user.

A model that can't be ported (not a model, a truncated file, a snippet that
raised, a model with no inputs, given inputs that don't fit it) is a report
with `error` and no module.
"""

from __future__ import annotations

import math
import os
import time
import zipfile
from typing import TYPE_CHECKING, Any

from sandbox.protocol import (
    MAX_CONFIG_CHARS,
    MAX_NOTES,
    MAX_SUMMARY_CHARS,
    ErrorInfo,
    PortLayer,
    PortOrder,
    PortReport,
    PortStub,
    PortTrap,
    RunResult,
    RunStatus,
)

from . import traps as trap_lessons

if TYPE_CHECKING:
    from .loading import Loaded

ARCHIVE_MEMBERS = ("model.py", "weights.safetensors", "port_report.json")


class PortRefused(Exception):
    """No model to port: `kind` names why for the report."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.line = kind, line


def model_from_file(order: PortOrder, model_fd: int) -> Loaded:
    from .loading import load_model_file

    with os.fdopen(os.dup(model_fd), "rb") as f:
        try:
            return load_model_file(f, order.suffix or ".keras")
        except zipfile.BadZipFile as exc:
            raise PortRefused("NotAModel", "this is not a .keras file (a Keras 3 model is a "
                              f"zip archive), or it was cut short: {exc}") from exc
        except (OSError, KeyError) as exc:
            raise PortRefused("NotAModel", f"this file can't be read as a Keras {order.suffix} "
                              f"model (cut short, or another format?): {exc}") from exc
        except Exception as exc:
            raise PortRefused("ModelLoadError", f"Keras could not load this model: "
                              f"{type(exc).__name__}: {exc}") from exc


def model_from_snippet(code: str) -> Any:
    import keras

    from sandbox import execute

    result, namespace = execute.run_snippet(code, 1, {})
    if result.error is not None:
        raise PortRefused(result.error.type, result.error.message, result.error.line)
    model = namespace.get("model")
    if not isinstance(model, keras.Model):
        models = [v for v in namespace.values() if isinstance(v, keras.Model)]
        if not models:
            raise PortRefused("NoModel", "the snippet built no Keras model: name it `model`, "
                              "or leave a keras.Model in scope")
        model = models[-1]
    return model


def check_inputs(model: Any) -> None:
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if not inputs:
        raise PortRefused("NoInputs", "the model has no inputs (a Sequential model never "
                          "built): give it an Input, or build it, before saving")


def summary(model: Any) -> str:
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda line, *_, **__: lines.append(str(line)),
                      line_length=110)
    except Exception as exc:  # a summary is a courtesy, never a reason to fail
        lines.append(f"(no summary: {type(exc).__name__})")
    return "\n".join(lines)[:MAX_SUMMARY_CHARS]


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def layer_row(row: Any) -> PortLayer:
    comparable = row.status in ("pass", "fail")
    return PortLayer(name=row.name[:256], class_name=row.class_name[:256],
                     attribute=row.attribute[:256], shape=list(row.shape)[:32],
                     max_abs_err=finite(row.max_abs_err) if comparable else None,
                     max_rel_err=finite(row.max_rel_err) if comparable else None,
                     status=row.status)


def trap_row(trap: Any) -> PortTrap:
    lesson, section = trap_lessons.LESSONS.get(trap.key, (None, None))
    return PortTrap(layer=trap.layer[:256], key=trap.key[:256], text=trap.text[:2000],
                    lesson=lesson, section=section)


def stub_row(lp: Any, model: Any) -> PortStub:
    from .converters import config_text

    layer = _find_layer(model, lp.path)
    config = config_text(layer) if layer is not None else "{}"
    return PortStub(name=lp.name[:256], class_name=lp.class_name[:256],
                    config=config[:MAX_CONFIG_CHARS])


def _find_layer(model: Any, path: tuple[str, ...]) -> Any:
    layer = model
    for name in path:
        try:
            layer = layer.get_layer(name)
        except (ValueError, AttributeError):
            return None
    return layer


def report_of(order: PortOrder, model: Any, ported: Any, proof: Any) -> PortReport:
    rows = [layer_row(r) for r in proof.rows]
    outputs = [layer_row(r) for r in proof.outputs]
    errors = [r for r in (*rows, *outputs) if r.max_abs_err is not None]
    notes = [*proof.notes, *([f"the module failed: {proof.error}"] if proof.error else [])]
    return PortReport(
        status=proof.status, class_name=ported.class_name[:256],
        module_source=ported.source, keras_summary=summary(model),
        layers=rows, outputs=outputs, traps=[trap_row(t) for t in ported.traps],
        unsupported=[stub_row(lp, model) for lp in ported.unsupported],
        notes=[n[:8000] for n in notes][:MAX_NOTES],
        max_abs_err=max((r.max_abs_err or 0.0 for r in errors), default=None),
        max_rel_err=max((r.max_rel_err or 0.0 for r in errors), default=None),
        atol=order.atol, rtol=order.rtol, layout=order.layout)


def module_weights(ported: Any) -> dict[str, Any]:
    """The module's whole state_dict: the port's tensors, and the buffers torch adds
    itself (BatchNorm's num_batches_tracked), so the file's keys are the module's."""
    import numpy as np

    from .proof import load_module

    weights = {k: np.ascontiguousarray(v) for k, v in ported.state_dict.items()}
    try:
        state = load_module(ported).state_dict()
    except Exception:  # a module that can't be built: its proof failed and says why
        return weights
    for key, tensor in state.items():
        if key not in weights:
            weights[key] = np.ascontiguousarray(tensor.detach().numpy())
    return weights


def write_archive(archive_fd: int, ported: Any, report: PortReport) -> None:
    from safetensors.numpy import save

    weights = save(module_weights(ported))
    with os.fdopen(os.dup(archive_fd), "wb") as raw, \
            zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model.py", ported.source)
        archive.writestr("weights.safetensors", weights)
        archive.writestr("port_report.json", report.model_dump_json())


def given_inputs(order: PortOrder, inputs_fd: int | None, model: Any) -> list[Any] | None:
    """The user's inputs, checked against the model (raises PortRefused when they don't fit)."""
    if order.inputs is None or inputs_fd is None:
        return None
    from .given_inputs import InputsRefused, load_given_inputs

    try:
        return load_given_inputs(inputs_fd, order.inputs, model)
    except InputsRefused as exc:
        raise PortRefused("InputsRefused", f"your inputs: {exc}") from exc


def batch_words(model: Any, given: list[Any] | None) -> list[str]:
    from .proof import random_inputs

    seeded = len(random_inputs(model, 0)[0])
    words = [f"seeded random inputs (seed 0, {seeded} samples)"]
    if given is not None:
        words.append(f"your inputs ({len(given[0])} samples)")
    return words


def port_model(order: PortOrder, model_fd: int | None,
               inputs_fd: int | None = None) -> tuple[Any, Any, PortReport]:
    """The model, its port and the report (raises PortRefused with no model to port)."""
    from . import port, prove

    load_notes: list[str] = []
    if order.code is not None:
        model = model_from_snippet(order.code)
    elif model_fd is not None:
        loaded = model_from_file(order, model_fd)
        model, load_notes = loaded.model, loaded.notes
    else:
        raise PortRefused("NoModel", "no model file came with the order")
    check_inputs(model)
    given = given_inputs(order, inputs_fd, model)
    try:
        ported = port(model, layout=order.layout)
    except Exception as exc:  # NotPortable (a subclassed model) and the like
        raise PortRefused(type(exc).__name__, str(exc)) from exc
    proof = prove(model, ported, inputs=given, atol=order.atol, rtol=order.rtol)
    report = report_of(order, model, ported, proof)
    report.batches = batch_words(model, given)
    report.notes = [*(n[:8000] for n in load_notes), *report.notes][:MAX_NOTES]
    if order.onnx:
        from .onnx_check import compare_onnx

        report.onnx = compare_onnx(model, ported, order)
    return model, ported, report


def run_port(order: PortOrder, model_fd: int | None, archive_fd: int,
             inputs_fd: int | None = None) -> RunResult:
    """In the run: port, write the archive; the RunResult says how the run itself went."""
    started = time.perf_counter()
    try:
        _, ported, report = port_model(order, model_fd, inputs_fd)
    except PortRefused as exc:
        refused = PortReport.failed(exc.kind, str(exc), order)
        if refused.error is not None:
            refused.error.line = exc.line
        refused.wall_ms = (time.perf_counter() - started) * 1000
        # No module: the report alone, for the trusted side to read back.
        with os.fdopen(os.dup(archive_fd), "wb") as raw, \
                zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("port_report.json", refused.model_dump_json())
        return RunResult(status=RunStatus.ok)
    report.wall_ms = (time.perf_counter() - started) * 1000
    write_archive(archive_fd, ported, report)
    return RunResult(status=RunStatus.ok)


def error_result(exc: BaseException) -> RunResult:
    """The run itself failed (memory, a bug): the trusted side reports it as a failed port."""
    from sandbox import execute

    info: ErrorInfo = execute.error_info(exc)
    status = RunStatus.memory if isinstance(exc, MemoryError) else RunStatus.error
    return RunResult(status=status, error=info)
