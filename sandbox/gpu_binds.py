"""Which GPU files a sandbox sees: one NVIDIA GPU's device nodes and its sysfs folder.

Read on the host, by the pool, before bubblewrap starts the template. Only
what the CUDA driver and NVML open for one device is bound in:

- `/dev/nvidiactl` (the driver's control node, opened by `cuInit` and NVML),
  `/dev/nvidia-uvm` (unified memory: every CUDA context maps it) and
  `/dev/nvidiaN` for the one GPU this pool uses, N being its device minor;
  of `/dev/nvidia-caps/*` (MIG instances are opened through them), only the
  nodes of this GPU's own instances: the driver names each instance's node in
  `/proc/driver/nvidia/capabilities/gpuN/mig/**/access` (`DeviceFileMinor`).
  Not the system-wide MIG `config` and `monitor` nodes, nor another GPU's
  instances, so a run can neither repartition a GPU nor reach another's.
  With `Limits.gpu_mig_instance` ("GI/CI"), only that one instance's two
  nodes (its GPU instance's and its compute instance's): CUDA enumerates
  the MIG devices a process can open, so the run sees that instance alone,
  as `cuda:0`, which is how NVIDIA's container runtime hands out one
  instance (it sets no `CUDA_VISIBLE_DEVICES` either).
- Not `/dev/nvidia-uvm-tools` (profilers' event interface, CUPTI), not
  `/dev/nvidia-modeset` (display), not other GPUs' nodes: the driver can only
  be asked about devices whose node a process can open, so the run's GPU is
  the only one it can reach, and it is `cuda:0` / `GPU:0` in both frameworks.
- From /sys, read-only: that GPU's PCI device folder (NUMA node, local CPUs,
  link speed; its `resource*` and `config` files are root's, mode 0600),
  the link to it under `/sys/bus/pci/devices`, the driver module's
  parameters, and the CPU and NUMA topology. Nothing else of /sys.
- `/proc/driver/nvidia` needs no bind: it is part of every procfs mount,
  the one each run mounts for itself (`isolation.confine_run`) included.

Every path is looked up under `root`, so tests can build a fake tree.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

NO_GPU = -1  # `gpu_device` value that keeps every GPU out of the sandbox
TOPOLOGY = ("sys/module/nvidia", "sys/devices/system/cpu", "sys/devices/system/node")
_MINOR = re.compile(r"^Device Minor:\s*(\d+)\s*$", re.MULTILINE)
_CAP_MINOR = re.compile(r"^DeviceFileMinor:\s*(\d+)\s*$", re.MULTILINE)
MIG_INSTANCE = re.compile(r"^(\d+)/(\d+)$")  # "GI/CI", as `nvidia-smi mig -lci` lists them


@dataclasses.dataclass(frozen=True)
class Gpu:
    minor: int  # N of /dev/nvidiaN
    bus_id: str | None  # PCI address, e.g. 0000:01:00.0; None when the driver doesn't say
    sys_dir: str | None  # its real folder under /sys/devices, as seen from the host
    mig_instance: str = ""  # "GI/CI": the one MIG instance runs may open; "": all of its own


def _bus_id(root: Path, minor: int) -> str | None:
    """The PCI address of the GPU whose device minor is `minor` (/proc/driver/nvidia/gpus)."""
    gpus = root / "proc/driver/nvidia/gpus"
    if not gpus.is_dir():
        return None
    for folder in sorted(gpus.iterdir()):
        try:
            found = _MINOR.search((folder / "information").read_text())
        except OSError:
            continue
        if found and int(found.group(1)) == minor:
            return folder.name
    return None


class MigInstanceMissing(ValueError):
    """The configured MIG instance isn't on this GPU: refuse to start rather than share it all."""


def find_gpu(minor: int, root: str = "/", mig_instance: str = "") -> Gpu | None:
    """The GPU `/dev/nvidia<minor>`, when it and the driver's shared nodes exist."""
    if minor == NO_GPU:
        return None
    top = Path(root)
    nodes = [top / "dev/nvidiactl", top / "dev/nvidia-uvm", top / f"dev/nvidia{minor}"]
    if not all(node.exists() for node in nodes):
        return None
    if mig_instance and len(own_mig_caps(minor, root, mig_instance)) != 2:
        raise MigInstanceMissing(
            f"GPU {minor} has no MIG instance {mig_instance} (GI/CI) with both device nodes: "
            f"see /proc/driver/nvidia/capabilities/gpu{minor}/mig and `nvidia-smi mig -lci`")
    bus_id = _bus_id(top, minor)
    sys_dir = None
    if bus_id is not None:
        link = top / "sys/bus/pci/devices" / bus_id
        if link.exists():
            sys_dir = "/" + str(link.resolve().relative_to(top.resolve()))
    return Gpu(minor, bus_id, sys_dir, mig_instance)


def bwrap_args(gpu: Gpu | None, root: str = "/") -> list[str]:
    """bubblewrap arguments that bring `gpu` (and nothing of any other) into the view."""
    if gpu is None:
        return []
    top = Path(root)
    args: list[str] = []
    nodes = ["/dev/nvidiactl", "/dev/nvidia-uvm", f"/dev/nvidia{gpu.minor}",
             *own_mig_caps(gpu.minor, root, gpu.mig_instance)]
    for node in nodes:
        args += ["--dev-bind", node, node]
    if gpu.sys_dir is not None and gpu.bus_id is not None:
        args += ["--ro-bind", gpu.sys_dir, gpu.sys_dir,
                 "--symlink", gpu.sys_dir, f"/sys/bus/pci/devices/{gpu.bus_id}"]
    for path in TOPOLOGY:
        if (top / path).exists():
            args += ["--ro-bind", f"/{path}", f"/{path}"]
    return _parents_open(args) + args


def own_mig_caps(minor: int, root: str = "/", instance: str = "") -> list[str]:
    """The /dev/nvidia-caps nodes of GPU `minor`'s MIG instances, none of any other's.

    With `instance` ("GI/CI"), only that one's: its GPU instance's node and
    its compute instance's.
    """
    top = Path(root)
    tree = top / f"proc/driver/nvidia/capabilities/gpu{minor}"
    if instance:
        match = MIG_INSTANCE.match(instance)
        if match is None:
            raise MigInstanceMissing(f"a MIG instance is named GI/CI, e.g. 1/0, not {instance!r}")
        gi = tree / f"mig/gi{match.group(1)}"
        accesses = [gi / "access", gi / f"ci{match.group(2)}" / "access"]
    else:
        accesses = list(tree.rglob("access")) if tree.is_dir() else []
    found = set()
    for access in accesses:
        try:
            match = _CAP_MINOR.search(access.read_text())
        except OSError:
            continue
        if match and (top / f"dev/nvidia-caps/nvidia-cap{match.group(1)}").exists():
            found.add(int(match.group(1)))
    return [f"/dev/nvidia-caps/nvidia-cap{n}" for n in sorted(found)]


def _parents_open(args: list[str]) -> list[str]:
    """bwrap makes missing parent folders 0700, which a run's plain uid can't enter."""
    targets = [args[i + 2] for i in range(0, len(args), 3)]
    parents = sorted({str(p) for t in targets for p in Path(t).parents} - {"/", "/dev"})
    return [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]


def run_slots(pool_size: int, gpu: Gpu | None, runs_per_device: int) -> int:
    """Runs at once: on a GPU pool, no more than its one GPU takes (`gpu_runs_per_device`).

    Every spare holds a CUDA context and any snippet may use the device, so
    the pool's slots are what bounds the GPU's concurrent runs.
    """
    return max(1, pool_size if gpu is None else min(pool_size, runs_per_device))
