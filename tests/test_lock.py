"""The lock files agree with pyproject.toml (make lock writes them; this only reads).

Each lock pins exactly the direct requirements of its set (the entries
annotated `sidebyside (pyproject.toml)`), at versions pyproject's
specifiers admit, every entry with a hash; torch is the CPU build in the CPU
locks and the CUDA build in the GPU lock; and the locks agree with each
other on every other version, so the web server and its workers run the
same code. No resolving, so it is quick: what it can't see is a lock whose
indirect pins no longer fit, which make lock sets right.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.settings import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ENTRY = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")
FROM_PYPROJECT = "sidebyside (pyproject.toml)"


@dataclass
class Pin:
    version: Version
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def read_lock(name: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if entry := ENTRY.match(line):
            current = pins[canonicalize_name(entry[1])] = Pin(Version(entry[2]))
        elif current is not None and line.strip().startswith("--hash="):
            current.hashes += 1
        elif current is not None and line.startswith("    #"):
            source = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if source:
                current.via.append(source)
    return pins


def wanted(lock: str) -> dict[str, Requirement]:
    """pyproject's direct requirements that this lock must pin."""
    extras = PROJECT["optional-dependencies"]
    lines = {"test.txt": [*PROJECT["dependencies"], *extras["test"]],
             "web.txt": PROJECT["dependencies"],
             # tensorflow[and-cuda] in place of tensorflow-cpu: both install `tensorflow`
             "gpu.txt": [d for d in PROJECT["dependencies"]
                         if not d.startswith("tensorflow-cpu")] + extras["gpu"]}[lock]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


LOCKS = ["test.txt", "web.txt", "gpu.txt"]


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_pins_what_pyproject_asks_for(lock: str) -> None:
    pins, asked = read_lock(lock), wanted(lock)
    direct = {name for name, pin in pins.items() if FROM_PYPROJECT in pin.via}
    assert sorted(asked.keys() - pins.keys()) == [], f"missing from {lock}: run make lock"
    assert sorted(direct ^ asked.keys()) == [], f"{lock} was made from another pyproject.toml"
    outside = [f"{name} {pins[name].version} vs {req.specifier}" for name, req in asked.items()
               if not req.specifier.contains(pins[name].version, prereleases=True)]
    assert outside == [], f"{lock} pins versions pyproject.toml no longer admits"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_a_hash(lock: str) -> None:
    pins = read_lock(lock)
    assert len(pins) > 20
    assert [name for name, pin in pins.items() if not pin.hashes] == []


def test_cpu_locks_take_torchs_cpu_build_and_the_gpu_lock_its_cuda_build() -> None:
    for lock in ("test.txt", "web.txt"):
        assert read_lock(lock)["torch"].version.local == "cpu", lock
        assert "tensorflow" not in read_lock(lock)
    gpu = read_lock("gpu.txt")
    assert gpu["torch"].version.local is None
    assert "tensorflow-cpu" not in gpu and "tensorflow" in gpu
    assert any(name.startswith("nvidia-") for name in gpu), "no CUDA libraries in the GPU lock"


def test_locks_agree_on_every_shared_version_but_torch() -> None:
    test, web, gpu = (read_lock(lock) for lock in LOCKS)
    assert web.keys() <= test.keys()
    differ = [f"{name}: {pins[name].version} vs {web[name].version}"
              for pins in (test, gpu) for name in web.keys() & pins.keys()
              if name != "torch" and pins[name].version != web[name].version]
    assert differ == []
