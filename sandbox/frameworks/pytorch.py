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
    # What torch.export, torch.onnx.export (dynamo=True, which translates with
    # onnxscript) and torch.distributed load on first use: CPU that every such
    # run paid again after the fork. Imported here they are shared pages of
    # every spare (a fork copies a few more page tables); a plain run never
    # touches them. Imports only: no op runs, no thread starts.
    # Not torch._dynamo, though it would save torch.compile and DDP about a
    # second: imported before the fork, one DDP run in about ten (two ranks
    # forked from the run) hung after its work until its time limit.
    import onnxscript  # noqa: F401
    import torch.distributed
    import torch.export
    import torch.onnx  # noqa: F401
    return None


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
