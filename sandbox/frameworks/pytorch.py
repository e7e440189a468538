"""PyTorch's start-up: its template's switches, a spare's warm-up, what a result reports."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sandbox.messages import KernelStatus
from sandbox.protocol import Timings, WarmUp

LOADED_ON_FIRST_USE = (
    "multiprocessing.popen_fork", "onnxscript.evaluator", "sympy.combinatorics",
    "sympy.tensor.tensor", "torch._dynamo.dce_extra_outputs",
    "torch._export.passes._node_metadata_hook",
    "torch._export.passes.replace_autocast_with_hop_pass",
    "torch._export.passes.replace_set_grad_with_hop_pass",
    "torch._functorch._aot_autograd.subclass_codegen",
    "torch._higher_order_ops.passes.inline_invoke_subgraph",
    "torch._inductor.compiler_bisector", "torch._subclasses.schema_check_mode",
    "torch.distributed.tensor.experimental", "torch.fx.experimental.validator",
    "torch.onnx._internal.exporter._analysis", "torch.onnx._internal.exporter._capture_strategies",
    "torch.onnx._internal.exporter._compat", "torch.onnx._internal.exporter._core",
    "torch.onnx._internal.exporter._decomp", "torch.onnx._internal.exporter._torchlib.ops",
    "torch.onnx._internal.exporter._verification",
    "torch.onnx._internal.fx.passes.type_promotion", "torch.utils.serialization",
)


def in_template(precompile_kernels: bool) -> KernelStatus | None:
    """Import torch once, and its compiler and exporters; every spare inherits them."""
    import torch

    # tensorboard's documented switch (its `no_tensorflow` build) for its
    # stand-in file layer: a PyTorch run's SummaryWriter then works as on
    # a machine without TensorFlow, instead of importing all of it (≈ 2.5 s).
    notf = "tensorboard.compat.notf"
    sys.modules.setdefault(notf, types.ModuleType(notf))
    # What torch.compile, torch.export, torch.onnx.export (dynamo=True, which
    # translates with onnxscript) and DDP load on first use: Dynamo, AOT
    # autograd, Inductor's lowering, the export tracer, onnxscript's op
    # library and rewrite rules (and NumPy's random generators, which many
    # snippets seed). Each run that compiled or exported paid
    # 1–2 s of CPU importing them again; here they are shared pages of every
    # spare (≈ 50 MiB more in the template; a fork copies a few more page
    # tables) that a plain run never touches. Imports only: no op runs, no
    # thread starts (tests/test_template.py checks the threads). Not onnxruntime:
    # importing it starts a thread.
    import functorch.compile  # noqa: F401
    import numpy.random  # noqa: F401
    import onnxscript._framework_apis.torch_2_11
    import onnxscript.function_libs.torch_lib.ops
    import onnxscript.rewriter.rules  # noqa: F401
    import torch._dynamo.backends.registry
    import torch._functorch.aot_autograd
    import torch._inductor.compile_fx
    import torch.distributed
    import torch.export._trace
    import torch.onnx

    # And what their first call imports lazily (measured: the modules a first
    # compile, export, ONNX export and DDP step add to sys.modules in a spare):
    # every Dynamo backend and the installed packages' entry points that name
    # more (read once here, not per run), the passes and checks a first trace
    # loads, sympy's group theory (shape guards), the ONNX exporter proper.
    torch._dynamo.backends.registry._lazy_import()
    for name in LOADED_ON_FIRST_USE:
        importlib.import_module(name)
    _fill_tracing_caches(torch)

    keep_backward_context_off_cpu_threads(torch)
    return None


def _fill_tracing_caches(torch: Any) -> None:
    """Fill the tables Dynamo builds on its first trace, from Python alone (no op runs).

    Measured on the compile lesson's step: a first `torch.compile` in a spare
    took 140 ms more than its second; these caches were 65 ms of that (what
    remains is FakeTensor's per-op cache, which only running ops fills).
    """
    import torch._dynamo.funcname_cache as funcname_cache
    import torch._dynamo.trace_rules as trace_rules
    import torch._functorch.partitioners as partitioners
    import torch.overrides

    # Dynamo names each frame it traces by tokenizing its source file once:
    # torch.nn's modules are the files nearly every compiled model runs through.
    nn_dir = Path(torch.nn.__file__).parent
    for source in [*sorted((nn_dir / "modules").glob("*.py")), nn_dir / "functional.py"]:
        funcname_cache._add_file(str(source))
    for table in (trace_rules.get_torch_obj_rule_map, trace_rules.get_tensor_method,
                  trace_rules.get_legacy_mod_inlinelist, trace_rules.get_mod_inlinelist,
                  trace_rules.get_mod_skiplist, trace_rules.dynamo_dir,
                  torch.overrides.get_testing_overrides,
                  torch.overrides._get_overridable_functions, partitioners.pointwise_ops):
        table()


def _first_onnx_export(torch: Any) -> None:
    """An onnx-export spare: export a small model to ONNX once and run it in onnxruntime.

    A spare's first export took 0.1 s more than its second: FakeTensor's
    per-op cache, the exporter's first decompositions, and onnxruntime's
    import (which starts a thread, so no template makes it). Dynamo is reset
    after, as for the compiler's.
    """
    import onnxruntime
    from torch import nn

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(2, 3)
    program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    session.run(None, {session.get_inputs()[0].name: x.numpy()})
    _reset_dynamo(torch)


def keep_backward_context_off_cpu_threads(torch: Any) -> None:
    """Work around a deadlock in torch 2.13's DDP teardown on gloo.

    Every `backward()` stashes a copy of the caller's contextvars in the
    calling thread's C++ thread-locals (`_stash_obj_in_tls("context", …)`),
    so compiled backward passes on CUDA's device threads see the caller's
    config. A gloo all-reduce started during backward captures those
    thread-locals; when gloo's worker thread drops the finished work, it
    needs the GIL to release the copy, while the main thread, holding the
    GIL, frees the DDP module and joins that very thread: both wait forever
    (pytorch/pytorch#180700 and #182083 fix other paths to the same
    deadlock). It struck one DDP run in two here, once start-up was fast
    enough to hit the window. On a CPU-only process backward runs on the
    calling thread, where the context is the caller's anyway, so the copy
    is not needed; a process that has started CUDA keeps it.
    """
    stash = torch._C._stash_obj_in_tls

    def stash_unless_cpu_backward(key: str, obj: Any) -> None:
        if key == "context" and not torch.cuda.is_initialized():
            return
        stash(key, obj)

    torch._C._stash_obj_in_tls = stash_unless_cpu_backward


def prepare(setup: str | None) -> None:
    """A prepared spare's import (`setups.py`): Keras on TensorFlow, or on torch."""
    if setup == "with-tensorflow":
        import keras
        import tensorflow  # noqa: F401

        del keras
    elif setup == "keras-on-torch":
        os.environ["KERAS_BACKEND"] = "torch"  # as the snippet sets it, before the import
        import keras


def warm_up(extras: Sequence[WarmUp] = (), setup: str | None = None) -> None:
    """The ops nearly every lesson uses, once (`extras` are TensorFlow's alone; a
    prepared spare's `setup` made its import already, or is the compiler's)."""
    import torch

    # Their first call in a process pays for kernel lookup and oneDNN/MKL
    # set-up (a first matmul alone is ~15 ms).
    w = torch.randn(4, 4, requires_grad=True)
    torch.relu(w @ torch.ones(4, 4)).sum().backward()
    if setup == "compiler":
        _first_compile(torch)
    elif setup == "onnx-export":
        _first_onnx_export(torch)


def _first_compile(torch: Any) -> None:
    """A compiler spare: compile (forward and backward) and export a small model once.

    A spare's first compile took 0.1 s more than its second even with every
    module imported and Dynamo's tables filled in the template: FakeTensor's
    per-op cache, AOT autograd's first partition, the guards' first build. Then
    Dynamo is reset, as for a new process: the run sees no compiled code and
    no counts from this one.
    """
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    torch.compile(model, backend="aot_eager")(x).sum().backward()
    torch.export.export(model, (x,))
    _reset_dynamo(torch)


def _reset_dynamo(torch: Any) -> None:
    """As for a new process: no compiled code, and no counts (reset leaves those)."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()


def threads() -> dict[str, int]:
    import torch

    return {"torch_intraop": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads()}


def before_snippet(graph: bool) -> None:
    """Nothing to set up: autograd graphs are read from the tensors a snippet left."""


def after_snippet(namespace: dict[str, Any], timings: Timings) -> None:
    """Nothing to add to a PyTorch run's timings."""
