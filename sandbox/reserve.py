"""How many ready spares of each framework the pool keeps, within a memory budget.

A spare serves one framework. Which ones a class needs next follows what it
asked for last: a decaying share of recent runs per framework splits the
budget, and each framework keeps at least one ready spare so the first run
of the other kind is warm too. A burst is served from this reserve while
refills warm up behind it.

A TensorFlow spare always starts the eager runtime and its first kernels
(≈ 80 ms of CPU). Two further warm-ups it makes only while recent
TensorFlow runs need them: *gradients* (variables, random numbers, the
tape: ≈ 30 ms) and *functions* (AutoGraph, ≈ 60 ms; `tf.function`, and
Keras's `fit`, `evaluate` and `predict` and `tf.data`'s `map`, which trace
one inside). A run that needs one its spare skipped pays that start-up
itself; a warm-up no run uses would be CPU spent for nothing.
"""

from __future__ import annotations

import math
import re

from sandbox.protocol import FRAMEWORKS, Framework, WarmUp

# PSS of one ready spare (MiB), measured on pools of 29-83 spares of one kind
# (sandbox/memory.py), rounded up: a PyTorch spare shares nearly all its pages
# with the template (9); a TensorFlow spare holds its own runtime's thread
# pools and caches (28), more with its optional warm-ups (+5 and +24).
SPARE_COST_MB: dict[Framework, int] = {"pytorch": 10, "tensorflow": 30}
WARM_UP_COST_MB: dict[WarmUp, int] = {"gradients": 5, "functions": 25}
DECAY = 0.9  # each run moves the shares a tenth of the way to its framework
# What a TensorFlow snippet's text says it will need (hints: warmth, not safety).
NEEDS: dict[WarmUp, re.Pattern[str]] = {
    "gradients": re.compile(
        r"GradientTape|Variable|random\.|optimizers?\.|\.(fit|train_on_batch)\("),
    "functions": re.compile(r"\btf\.function\b|@function\b|\.(fit|evaluate|predict|map)\("),
}
# Settings TensorFlow takes only before its runtime starts ("... cannot be
# modified after being initialized"): a snippet that makes them gets a spare
# made for it that started nothing, and pays TF's start-up in its own run.
FRESH_RUNTIME = re.compile(
    r"set_(logical|virtual)_device_configuration|set_visible_devices|set_memory_growth"
    r"|set_(intra|inter)_op_parallelism_threads")
# Before any demand is seen: lessons' TensorFlow steps mostly train something.
FIRST_SHARES: dict[WarmUp, float] = {"gradients": 1.0, "functions": 0.5}


def needs(code: str) -> set[WarmUp]:
    return {name for name, pattern in NEEDS.items() if pattern.search(code)}


def needs_fresh_runtime(framework: Framework, code: str) -> bool:
    return framework == "tensorflow" and FRESH_RUNTIME.search(code) is not None


def default_memory_mb(total_ram_mb: int) -> int:
    """A thirty-second of the machine's memory, within [256, 2048] MiB."""
    return max(256, min(2048, total_ram_mb // 32))


def total_ram_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096


class Reserve:
    def __init__(self, memory_mb: int, most: int | None = None) -> None:
        self.memory_mb = memory_mb
        # On a GPU each spare holds a CUDA context (hundreds of MiB of device
        # memory): there the count is capped too, whatever the host's memory.
        self.most = most
        self.share: dict[Framework, float] = {f: 1 / len(FRAMEWORKS) for f in FRAMEWORKS}
        self.needs_share = dict(FIRST_SHARES)  # of recent TensorFlow runs

    def record(self, framework: Framework, code: str = "") -> None:
        for f in FRAMEWORKS:
            self.share[f] = DECAY * self.share[f] + (1 - DECAY) * (f == framework)
        if framework == "tensorflow":
            used = needs(code)
            for name, share in self.needs_share.items():
                self.needs_share[name] = DECAY * share + (1 - DECAY) * (name in used)

    def warm_ups(self, framework: Framework) -> list[WarmUp]:
        """The optional warm-ups the next spare of `framework` should make before a run asks."""
        if framework != "tensorflow":
            return []
        return sorted(name for name, share in self.needs_share.items() if share >= 0.5)

    def spare_cost_mb(self, framework: Framework) -> int:
        extras = sum(WARM_UP_COST_MB[w] for w in self.warm_ups(framework))
        return SPARE_COST_MB[framework] + extras

    def targets(self) -> dict[Framework, int]:
        """Ready spares to keep per framework: the budget split by recent demand, one at least."""
        targets = {f: max(1, math.floor(self.memory_mb * self.share[f] / self.spare_cost_mb(f)))
                   for f in FRAMEWORKS}
        if self.most is not None and sum(targets.values()) > self.most:
            targets = {f: max(1, math.floor(self.most * self.share[f])) for f in FRAMEWORKS}
        return targets
