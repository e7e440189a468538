"""PyTorch's start-up: its template's switches, a spare's warm-up, what a result reports."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

from sandbox.messages import KernelStatus
from sandbox.protocol import Timings, WarmUp


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

    keep_backward_context_off_cpu_threads(torch)
    return None


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


def warm_up(extras: Sequence[WarmUp] = ()) -> None:
    """The ops nearly every lesson uses, once (`extras` are TensorFlow's alone)."""
    import torch

    # Their first call in a process pays for kernel lookup and oneDNN/MKL
    # set-up (a first matmul alone is ~15 ms).
    w = torch.randn(4, 4, requires_grad=True)
    torch.relu(w @ torch.ones(4, 4)).sum().backward()


def threads() -> dict[str, int]:
    import torch

    return {"torch_intraop": torch.get_num_threads(),
            "torch_interop": torch.get_num_interop_threads()}


def before_snippet(graph: bool) -> None:
    """Nothing to set up: autograd graphs are read from the tensors a snippet left."""


def after_snippet(namespace: dict[str, Any], timings: Timings) -> None:
    """Nothing to add to a PyTorch run's timings."""
