"""How many ready spares of each framework the pool keeps, within a memory budget.

A spare serves one framework. Which ones a class needs next follows what it
asked for last: a decaying share of recent runs per framework splits the
budget, and each framework keeps at least one ready spare so the first run
of the other kind is warm too. A burst is served from this reserve while
refills warm up behind it.

TensorFlow spares also start AutoGraph (≈ 60 ms of CPU each) only while
recent TensorFlow runs trace functions: `tf.function`, and Keras's `fit`,
`evaluate` and `predict` and `tf.data`'s `map`, which trace one inside. A run
that traces in a spare that skipped it pays that start-up itself.
"""

from __future__ import annotations

import math
import re

from sandbox.protocol import FRAMEWORKS, Framework

# PSS of one ready spare with its supervisor (MiB), measured on a pool with
# 24 spares (sandbox/memory.py): a PyTorch spare shares nearly all its pages
# with the template (12 + 9); a TensorFlow spare holds its own runtime's
# thread pools and caches (58 + 9).
SPARE_COST_MB: dict[Framework, int] = {"pytorch": 24, "tensorflow": 70}
DECAY = 0.9  # each run moves the shares a tenth of the way to its framework
TRACES = re.compile(r"\btf\.function\b|@function\b|\.(fit|evaluate|predict|map)\(")


def traces_functions(code: str) -> bool:
    """Whether a TensorFlow snippet will trace a function (a hint: warmth, not safety)."""
    return TRACES.search(code) is not None


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
    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.share: dict[Framework, float] = {f: 1 / len(FRAMEWORKS) for f in FRAMEWORKS}
        self.tracing_share = 0.5  # of recent TensorFlow runs; lessons start half and half

    def record(self, framework: Framework, code: str = "") -> None:
        for f in FRAMEWORKS:
            self.share[f] = DECAY * self.share[f] + (1 - DECAY) * (f == framework)
        if framework == "tensorflow":
            traces = traces_functions(code)
            self.tracing_share = DECAY * self.tracing_share + (1 - DECAY) * traces

    def warm_functions(self, framework: Framework) -> bool:
        """Whether the next spare of `framework` should start AutoGraph before a run asks."""
        return framework == "tensorflow" and self.tracing_share >= 0.5

    def targets(self) -> dict[Framework, int]:
        """Ready spares to keep per framework: the budget split by recent demand, one at least."""
        return {f: max(1, math.floor(self.memory_mb * self.share[f] / SPARE_COST_MB[f]))
                for f in FRAMEWORKS}
