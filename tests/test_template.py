"""The template process on its own (sandbox/template.py); its spares are in test_pool.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.settings import ROOT
from sandbox import hugepages, template
from sandbox.launcher import RUN_ENV
from sandbox.loop import Loop


def test_the_template_folds_its_heap_again_after_many_spares_once_quiet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    folds: list[int] = []
    monkeypatch.setattr(hugepages, "collapse_heap", lambda: folds.append(1) or 0)
    refold = template.Refold(Loop())
    for _ in range(template.Refold.EVERY - 1):
        refold.spawned()
    assert refold.timer is None
    refold.spawned()
    assert refold.timer is not None
    refold._fold()  # a spare was asked for just now: a burst may be on, so later
    assert folds == [] and refold.timer is not None
    refold.last -= template.Refold.QUIET_S
    refold._fold()
    assert folds == [1] and refold.count == 0


PYTORCH_TEMPLATE = r"""
import os, sys
import torch
threads = len(os.listdir("/proc/self/task"))
from sandbox.frameworks import pytorch
pytorch.in_template(precompile_kernels=False)
loaded = all(m in sys.modules for m in ("torch._dynamo", "torch._inductor.compile_fx",
                                        "torch.export._trace", "onnxscript.rewriter.rules"))
print(threads, len(os.listdir("/proc/self/task")), loaded, "onnxruntime" in sys.modules)
"""


def test_the_pytorch_template_imports_its_compiler_stack_without_starting_a_thread() -> None:
    # A thread alive at the fork can hold a lock its copy in the spare never releases.
    done = subprocess.run([sys.executable, "-c", PYTORCH_TEMPLATE], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**RUN_ENV, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    before, after, loaded, onnxruntime = done.stdout.split()
    assert loaded == "True" and after == before
    assert onnxruntime == "False"  # importing it starts a thread


TENSORFLOW_TEMPLATE = r"""
import os, sys
import tensorflow
from tensorflow.python.eager import context
threads = len(os.listdir("/proc/self/task"))
from sandbox.frameworks import tensorflow as side
side.in_template(precompile_kernels=False)
print(threads, len(os.listdir("/proc/self/task")), "tf2onnx.convert" in sys.modules,
      context.context()._initialized)
"""


def test_the_tensorflow_template_imports_its_exporter_without_starting_the_runtime() -> None:
    done = subprocess.run([sys.executable, "-c", TENSORFLOW_TEMPLATE], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**RUN_ENV, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    before, after, loaded, runtime_started = done.stdout.split()
    assert loaded == "True" and after == before
    assert runtime_started == "False"  # no op ran: the spares start it after the fork
