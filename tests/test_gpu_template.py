"""The template never starts CUDA: a real template, with tripwires on every way in.

CUDA does not survive a fork, so the template (which forks every spare) must
not start it, not even to ask whether a GPU is there. On a machine without a
GPU the calls still happen, and fail or answer "none", so they can be caught
here: each function through which PyTorch or TensorFlow starts CUDA (or
lists GPUs) is wrapped, in the template's own process, to note which pid
called it. Spares and runs inherit the wrappers; the template must be the
one process that never calls them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sandbox import launcher
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.pool import Pool
from sandbox.protocol import RunRequest, RunStatus

TRIPWIRES = '''
import os, sys, importlib
import torch, tensorflow
from tensorflow.python.eager import context
from tensorflow.python import pywrap_tfe

NOTES = {notes!r}

def wire(owner, name):
    original = getattr(owner, name)
    def noted(*args, **kwargs):
        with open(NOTES, "a") as f:
            f.write(f"{{os.getpid()}} {{name}}\\n")
        return original(*args, **kwargs)
    setattr(owner, name, noted)

for name in ("_lazy_init", "init", "is_available", "device_count", "get_device_name",
             "get_device_properties", "mem_get_info", "set_per_process_memory_fraction",
             "synchronize"):
    wire(torch.cuda, name)
for name in ("_cuda_init", "_cuda_getDeviceCount"):
    if hasattr(torch._C, name):
        wire(torch._C, name)
wire(pywrap_tfe, "TF_ListPhysicalDevices")
wire(context.Context, "ensure_initialized")
for name in ("list_physical_devices", "list_logical_devices", "set_logical_device_configuration"):
    wire(tensorflow.config, name)
wire(tensorflow.config.experimental, "set_memory_growth")

from sandbox.template import main
main()
'''

# In each run: the calls a GPU lesson makes, so the wrappers are seen to work.
PROBES = {
    "pytorch": "import torch\nprint(torch.cuda.is_available())",
    "tensorflow": "import tensorflow as tf\nprint(tf.config.list_physical_devices('GPU'))",
}


def template_pids(pool: Pool) -> set[int]:
    """The pool's template processes: one for both frameworks, or one per framework."""
    templates = getattr(pool, "templates", None)
    if templates is not None:
        return {t.process.pid for t in templates.values() if t.process is not None}
    process = getattr(pool, "_process", None)
    return {process.pid} if process is not None else set()


@pytest.mark.slow
def test_the_template_never_starts_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = tmp_path / "cuda-calls"
    notes.touch()
    notes.chmod(0o666)  # runs write here too (insecure mode: no filesystem fence)
    prelude = TRIPWIRES.format(notes=str(notes))

    template_argv = launcher.template_argv

    def argv(*args: Any, **kwargs: Any) -> list[str]:
        command = template_argv(*args, **kwargs)
        at = command.index("-m")
        command[at:at + 2] = ["-c", prelude]  # the same main(), behind the tripwires
        return command

    # Insecure: the template runs without bubblewrap, so the file above is
    # reachable; the fence has nothing to do with when CUDA starts.
    monkeypatch.setattr(launcher, "template_argv", argv)

    async def scenario() -> set[int]:
        pool = Pool(Limits(), size=1, insecure=True, spares_memory_mb=64)
        await pool.start()
        try:
            for framework, code in PROBES.items():
                result = await pool.run(RunRequest(framework=framework, code=code),
                                        Client("t", "10.0.0.1"))
                assert result.status == RunStatus.ok, result.error
            return template_pids(pool)
        finally:
            await pool.stop()

    templates = asyncio.run(scenario())
    calls = [line.split(" ", 1) for line in notes.read_text().splitlines()]
    by_template = [name for pid, name in calls if int(pid) in templates]
    by_runs = {name for pid, name in calls if int(pid) not in templates}
    assert by_template == [], f"the template started CUDA through {by_template}"
    # the wrappers reach the runs: a template that called these would be caught
    assert {"is_available", "TF_ListPhysicalDevices", "ensure_initialized"} <= by_runs, by_runs
