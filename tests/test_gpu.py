"""The GPU path, on machines without a GPU.

The GPU lies outside these machines: the host's device tree is built as a
fake one under tmp_path, and the calls that would reach CUDA are stood in
for, so what is checked is which files are bound, which calls are made in
which order, with which values. What CUDA itself does with them is checked
by `bench/gpu_check.sh` on a GPU host.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from sandbox import frameworks, gpu, gpu_binds, launcher, rlimits, runner
from sandbox.gpu_binds import NO_GPU, Gpu, bwrap_args, find_gpu, run_slots
from sandbox.limits import Limits
from sandbox.messages import SpawnSpare
from sandbox.protocol import RunStatus
from sandbox.reserve import Reserve
from sandbox.wire import parse_frame

GPU_BUS = "0000:41:00.0"
GPU_SYS = "sys/devices/pci0000:40/0000:40:01.1/" + GPU_BUS


def fake_host(root: Path, with_driver_info: bool = True) -> Path:
    """Two GPUs (minors 0 and 1), the driver's shared nodes and those runs must not get."""
    dev = root / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset",
                 "nvidia0", "nvidia1", "nvidia-caps/nvidia-cap1", "nvidia-caps/nvidia-cap2",
                 "nvidia-caps/nvidia-cap12", "nvidia-caps/nvidia-cap13",
                 "nvidia-caps/nvidia-cap21"):
        (dev / name).touch()
    # MIG: the system-wide config (cap1) and monitor (cap2) nodes, GPU 1's instance
    # (gi 1, compute instance 0: caps 12, 13) and GPU 0's (cap 21)
    caps = root / "proc/driver/nvidia/capabilities"
    for path, cap in (("mig/config", 1), ("mig/monitor", 2), ("gpu1/mig/gi1/access", 12),
                      ("gpu1/mig/gi1/ci0/access", 13), ("gpu0/mig/gi1/access", 21)):
        (caps / path).parent.mkdir(parents=True, exist_ok=True)
        (caps / path).write_text(f"DeviceFileMinor: {cap}\nDeviceFileMode: 292\n")
    other_bus = "0000:01:00.0"
    for bus, minor, folder in ((other_bus, 0, "sys/devices/pci0000:00/" + other_bus),
                               (GPU_BUS, 1, GPU_SYS)):
        (root / folder).mkdir(parents=True)
        (root / folder / "numa_node").write_text("0\n")
        links = root / "sys/bus/pci/devices"
        links.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / folder, links), links / bus)
        if with_driver_info:
            info = root / "proc/driver/nvidia/gpus" / bus
            info.mkdir(parents=True)
            (info / "information").write_text(
                f"Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\nDevice Minor: \t {minor}\n")
    for path in gpu_binds.TOPOLOGY:
        (root / path).mkdir(parents=True)
    (root / "sys/kernel").mkdir(parents=True)  # the rest of /sys, which must stay out
    return root


def test_only_the_chosen_gpus_nodes_and_sysfs_folder_are_bound(tmp_path: Path) -> None:
    root = str(fake_host(tmp_path))
    found = find_gpu(1, root)
    assert found == Gpu(1, GPU_BUS, "/" + GPU_SYS)
    args = bwrap_args(found, root)
    opened = [tuple(args[i:i + 4]) for i in range(0, len(args), 4) if args[i] == "--perms"]
    # every folder above a bound path is made first, open to the run's uid
    assert [folder for *_, folder in opened] == [
        "/dev/nvidia-caps", "/sys", "/sys/bus", "/sys/bus/pci", "/sys/bus/pci/devices",
        "/sys/devices", "/sys/devices/pci0000:40", "/sys/devices/pci0000:40/0000:40:01.1",
        "/sys/devices/system", "/sys/module"]
    assert all(a[:3] == ("--perms", "0755", "--dir") for a in opened)
    args = args[4 * len(opened):]
    triples = [tuple(args[i:i + 3]) for i in range(0, len(args), 3)]
    assert triples == [
        ("--dev-bind", "/dev/nvidiactl", "/dev/nvidiactl"),
        ("--dev-bind", "/dev/nvidia-uvm", "/dev/nvidia-uvm"),
        ("--dev-bind", "/dev/nvidia1", "/dev/nvidia1"),
        # its own MIG instance's nodes: not config, monitor or the other GPU's
        ("--dev-bind", "/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap12"),
        ("--dev-bind", "/dev/nvidia-caps/nvidia-cap13", "/dev/nvidia-caps/nvidia-cap13"),
        ("--ro-bind", "/" + GPU_SYS, "/" + GPU_SYS),
        ("--symlink", "/" + GPU_SYS, f"/sys/bus/pci/devices/{GPU_BUS}"),
        ("--ro-bind", "/sys/module/nvidia", "/sys/module/nvidia"),
        ("--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"),
        ("--ro-bind", "/sys/devices/system/node", "/sys/devices/system/node"),
    ]


def test_without_the_drivers_gpu_list_the_nodes_are_bound_and_no_sysfs_folder(
        tmp_path: Path) -> None:
    root = str(fake_host(tmp_path, with_driver_info=False))
    found = find_gpu(0, root)
    assert found == Gpu(0, None, None)
    args = bwrap_args(found, root)
    assert "/dev/nvidia0" in args and "/dev/nvidia1" not in args and "--symlink" not in args
    caps = [a for a in args if a.startswith("/dev/nvidia-caps/")]
    assert set(caps) == {"/dev/nvidia-caps/nvidia-cap21"}  # GPU 0's instance alone
    assert not any(a.startswith("/sys/devices/pci") for a in args)


def test_a_named_mig_instance_is_the_only_one_bound(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    caps = tmp_path / "proc/driver/nvidia/capabilities/gpu1/mig"
    for path, cap in (("gi2/access", 14), ("gi2/ci0/access", 15)):  # a second instance
        (caps / path).parent.mkdir(parents=True)
        (caps / path).write_text(f"DeviceFileMinor: {cap}\nDeviceFileMode: 292\n")
        (tmp_path / f"dev/nvidia-caps/nvidia-cap{cap}").touch()
    every = bwrap_args(find_gpu(1, str(root)), str(root))
    assert {a for a in every if a.startswith("/dev/nvidia-caps/")} == {
        f"/dev/nvidia-caps/nvidia-cap{n}" for n in (12, 13, 14, 15)}
    found = find_gpu(1, str(root), mig_instance="2/0")
    assert found is not None and found.mig_instance == "2/0"
    args = bwrap_args(found, str(root))
    assert {a for a in args if a.startswith("/dev/nvidia-caps/")} == {
        "/dev/nvidia-caps/nvidia-cap14", "/dev/nvidia-caps/nvidia-cap15"}
    with pytest.raises(gpu_binds.MigInstanceMissing, match="no MIG instance 3/0"):
        find_gpu(1, str(root), mig_instance="3/0")  # refused, not widened to every instance
    with pytest.raises(gpu_binds.MigInstanceMissing, match="no MIG instance 1/1"):
        find_gpu(1, str(root), mig_instance="1/1")


def test_no_gpu_is_found_without_its_nodes_or_when_turned_off(tmp_path: Path) -> None:
    root = fake_host(tmp_path)
    assert find_gpu(NO_GPU, str(root)) is None
    assert find_gpu(2, str(root)) is None  # no /dev/nvidia2
    (root / "dev/nvidia-uvm").unlink()
    assert find_gpu(1, str(root)) is None  # CUDA can't make a context without it
    assert bwrap_args(None, str(root)) == []


def test_the_sandbox_command_holds_the_gpu_binds_only_on_a_gpu_pool(tmp_path: Path) -> None:
    plain = launcher.bwrap_command(["true"], 3, 4, 5)
    assert not any("nvidia" in a for a in plain)
    # Of /sys, a CPU pool holds only the empty folders gloo lists, nothing bound from the host.
    assert {a for a in plain if a.startswith("/sys")} == set(launcher.SYS_FOLDERS)
    assert all(plain[i - 1] == "--dir" for i, a in enumerate(plain) if a.startswith("/sys"))
    on_gpu = launcher.bwrap_command(["true"], 3, 4, 5, gpu=Gpu(1, GPU_BUS, "/" + GPU_SYS))
    assert "/dev/nvidia1" in on_gpu and "/" + GPU_SYS in on_gpu
    binds = {on_gpu[i + 1] for i, a in enumerate(on_gpu) if a.endswith("bind")}
    assert "/sys" not in binds and "/sys/devices" not in binds
    # after --dev /dev (which would hide them) and before the command
    assert on_gpu.index("/dev/nvidia1") > on_gpu.index("--dev") > 0
    assert on_gpu.index("/dev/nvidia1") < on_gpu.index("--")


def test_one_run_per_gpu_caps_the_pools_slots() -> None:
    on_gpu = Gpu(0, None, None)
    assert run_slots(8, None, 1) == 8
    assert run_slots(8, on_gpu, 1) == 1
    assert run_slots(8, on_gpu, 3) == 3
    assert run_slots(2, on_gpu, 3) == 2


def test_spares_on_a_gpu_pool_are_capped_by_count() -> None:
    host = Reserve(2048)
    assert sum(host.targets().values()) > 8
    capped = Reserve(2048, most=8)
    assert sum(capped.targets().values()) <= 8 and min(capped.targets().values()) >= 1
    for _ in range(50):
        capped.record("pytorch")
    assert capped.targets()["pytorch"] > capped.targets()["tensorflow"] >= 1


def test_a_gpu_is_present_only_where_its_control_node_is(tmp_path: Path) -> None:
    assert not gpu.present(str(tmp_path))
    (tmp_path / "nvidiactl").touch()
    assert gpu.present(str(tmp_path))


def _recording_warm_up(monkeypatch: pytest.MonkeyPatch, present: bool) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(gpu, "present", lambda: present)

    def prepare(framework: str, memory_mb: int, warm: bool = True) -> str:
        calls.append(("gpu" if warm else "gpu caps only", framework, memory_mb))
        return "Fake GPU, 16 GiB, CUDA 12.8"

    monkeypatch.setattr(gpu, "prepare", prepare)
    def warm(name: str) -> Callable[..., None]:
        return lambda extras=(), setup=None: calls.append(("cpu", name))

    def prepared(name: str) -> Callable[..., None]:
        return lambda setup: calls.append(("setup", name, setup)) if setup else None

    for name, module in frameworks.MODULES.items():
        monkeypatch.setattr(module, "warm_up", warm(name))
        monkeypatch.setattr(module, "prepare", prepared(name))
    return calls


def test_warm_up_makes_a_cuda_context_only_when_a_gpu_is_present(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _recording_warm_up(monkeypatch, present=False)
    ready = runner.warm_up("pytorch", (), gpu_memory_mb=1000)
    assert calls == [("cpu", "pytorch")] and "GPU" not in ready.device

    calls = _recording_warm_up(monkeypatch, present=True)
    ready = runner.warm_up("tensorflow", (), gpu_memory_mb=1000)
    # the GPU first: TF's memory limit must be set before its runtime starts
    assert calls == [("gpu", "tensorflow", 1000), ("cpu", "tensorflow")]
    assert ready.device == "Fake GPU, 16 GiB, CUDA 12.8"

    # A fresh spare (its snippet configures TF's runtime) sets the caps and starts nothing.
    calls = _recording_warm_up(monkeypatch, present=True)
    runner.warm_up("tensorflow", ("functions",), gpu_memory_mb=1000, fresh=True)
    assert calls == [("gpu caps only", "tensorflow", 1000)]

    # A prepared spare splits the CPU before anything, the GPU's caps included, starts
    # the runtime (setups.py).
    calls = _recording_warm_up(monkeypatch, present=True)
    runner.warm_up("tensorflow", (), gpu_memory_mb=1000, setup="cpus-2")
    assert calls == [("setup", "tensorflow", "cpus-2"), ("gpu", "tensorflow", 1000),
                     ("cpu", "tensorflow")]


class Props:
    total_memory = 16 * 2**30


def test_prepare_caps_both_frameworks_before_warming_the_spares_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow  # noqa: F401  (both imported: as in a spare whose template had both)
    import torch

    calls: list[Any] = []

    def cap_tensorflow(memory_mb: int) -> bool:
        calls.append(("cap tf", memory_mb))
        return True

    monkeypatch.setattr(gpu, "cap_tensorflow", cap_tensorflow)
    monkeypatch.setattr(gpu, "cap_torch", lambda mb: calls.append(("cap torch", mb)))
    monkeypatch.setattr(gpu, "warm_torch", lambda: calls.append("warm torch"))
    monkeypatch.setattr(gpu, "warm_tensorflow", lambda: calls.append("warm tf"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "describe", lambda: "Fake GPU, 16 GiB, CUDA 12.8")
    assert gpu.prepare("pytorch", 512) == "Fake GPU, 16 GiB, CUDA 12.8"
    gpu.prepare("tensorflow", 512)
    assert calls == [("cap tf", 512), ("cap torch", 512), "warm torch",
                     ("cap tf", 512), ("cap torch", 512), "warm tf"]


def test_a_gpu_with_cpu_builds_of_the_frameworks_leaves_spares_on_the_cpu() -> None:
    # This machine's builds have no CUDA (and no driver): a spare that finds a
    # device node anyway (a CPU wheel left on a GPU host) must still come up.
    assert gpu.prepare("pytorch", 512) == (
        "NVIDIA GPU (no libcuda.so.1) (unused: pytorch built without CUDA)")


def test_a_spare_caps_only_the_frameworks_it_has_imported() -> None:
    # One template per framework: a PyTorch spare must not import TensorFlow
    # (seconds) just to cap it.
    code = ("import sys, torch\nfrom sandbox import gpu\ngpu.prepare('pytorch', 512)\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_address_space_is_unlimited_only_with_a_gpu_in_view(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def limit_in_child() -> int:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            rlimits.apply_limits(Limits())
            os.write(write, str(resource.getrlimit(resource.RLIMIT_AS)[0]).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as f:
            return int(f.read())

    assert limit_in_child() == Limits().address_space_mb * 2**20
    monkeypatch.setattr(gpu, "present", lambda: True)
    assert limit_in_child() == resource.RLIM_INFINITY


def test_torch_cap_is_the_memory_as_a_fraction_of_the_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    asked: list[tuple[float, int]] = []
    # raising=True (the default): these names must exist in this torch
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda f, d: asked.append((f, d)))
    assert gpu.cap_torch(4096) == 0.25 and asked == [(0.25, 0)]
    assert gpu.cap_torch(10**6) == 1.0  # more than the device: all of it


def test_tensorflow_cap_is_one_logical_gpu_with_a_memory_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    device = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    asked: list[Any] = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind: [device] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config, "set_logical_device_configuration",
                        lambda d, configs: asked.append((d, configs)))
    gpu.cap_tensorflow(4096)
    assert asked == [(device, [tf.config.LogicalDeviceConfiguration(memory_limit=4096)])]


def test_gpu_settings_reach_the_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("RUN_GPU_MEMORY_MB", "1536"), ("GPU_DEVICE", "-1"),
                        ("GPU_RUNS_PER_DEVICE", "2"), ("GPU_SPARES", "6"),
                        ("GPU_MIG_INSTANCE", "2/0"), ("RUN_CPUS", "1.5")):
        monkeypatch.setenv(f"SIDEBYSIDE_{name}", value)
    limits = Settings().limits()
    assert (limits.gpu_memory_mb, limits.gpu_device, limits.gpu_runs_per_device,
            limits.gpu_spares, limits.gpu_mig_instance, limits.cpus) == (
                1536, -1, 2, 6, "2/0", 1.5)
    order = SpawnSpare(id=1, slot=0, framework="pytorch", name="1-1", limits=limits)
    received = parse_frame(SpawnSpare, order.model_dump_json().encode())
    assert received.limits == limits and isinstance(received.limits, Limits)


@pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("setpriv") is None
                    or os.getuid() != 0, reason="needs bwrap, setpriv and root")
def test_a_runs_uid_can_read_what_is_bound_below_folders_bwrap_makes() -> None:
    # This host's own topology folders stand in for a GPU's sysfs folder.
    binds = [a for path in gpu_binds.TOPOLOGY if os.path.exists("/" + path)
             for a in ("--ro-bind", "/" + path, "/" + path)]
    assert binds, "no topology folder on this host"
    fds = launcher.identity_fds()
    command = launcher.bwrap_command(
        ["setpriv", "--reuid", "61000", "--regid", "61000", "--clear-groups",
         "ls", binds[1]], *fds)
    end = command.index("--remount-ro")
    command[end:end] = gpu_binds._parents_open(binds) + binds
    try:
        done = subprocess.run(command, pass_fds=fds, capture_output=True, text=True, timeout=60)
    finally:
        for fd in fds:
            os.close(fd)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr


def test_every_timed_repeat_waits_for_the_device_before_the_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import execute

    waits: list[int] = []
    monkeypatch.setattr(gpu, "sync", lambda: waits.append(1))
    result, _ = execute.run_snippet("x = 1\n# %% timed\ny = x + 1", 3, {})
    assert result.status == RunStatus.ok and len(waits) == 3


def test_tensorflow_device_work_is_waited_for_once_its_gpu_was_set_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    waited: list[str] = []
    real = tf.test.experimental.sync_devices

    def sync_devices() -> None:
        waited.append("tf")
        real()

    monkeypatch.setattr(tf.test.experimental, "sync_devices", sync_devices)
    gpu.sync()
    assert waited == []  # no TF GPU set up in this process: nothing to wait for
    monkeypatch.setitem(gpu._state, "tensorflow", True)
    gpu.sync()  # the real call too: TF 2.21 has it and runs it on any device
    assert waited == ["tf"]
