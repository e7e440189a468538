"""What a worker host computes on, for its heartbeat: the GPU (name, memory, CUDA) or the CPU.

Read from the driver's `nvidia-smi` and `/proc/cpuinfo`, never by importing a
framework: the worker process stays as light as the web server.
"""

from __future__ import annotations

import dataclasses
import glob
import re
import shutil
import subprocess
from pathlib import Path

from sandbox.protocol import Device


@dataclasses.dataclass(frozen=True)
class HostDevice:
    device: Device
    name: str
    memory_mb: int | None = None
    cuda: str | None = None


def has_gpu() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def describe(device: Device) -> HostDevice:
    if device == "gpu":
        return _gpu() or HostDevice("gpu", "no NVIDIA GPU found by nvidia-smi")
    return HostDevice("cpu", cpu_model())


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip()[:200] if found else "unknown CPU"


def _gpu() -> HostDevice | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        listing = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True).stdout
        banner = subprocess.run([smi], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = listing.strip().splitlines()[0] if listing.strip() else ""
    name, _, memory = first.partition(",")
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    return HostDevice("gpu", name.strip()[:200] or "NVIDIA GPU",
                      int(memory.strip()) if memory.strip().isdigit() else None,
                      cuda.group(1) if cuda else None)
