"""Each framework's own start-up, in one module per framework.

    template: `in_template`  imports it once, and what every spare inherits
    spare:    `prepare`      a prepared spare's setting or import (`setups.py`)
              `warm_up`      pays its per-process start-up before code arrives
    run:      `before_snippet`, `after_snippet`   what its runs need around the code

Neither module imports its framework at import time: a PyTorch template
must never load TensorFlow, nor the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sandbox.frameworks import pytorch, tensorflow
from sandbox.messages import KernelStatus
from sandbox.protocol import Framework, Timings, WarmUp


class Side(Protocol):
    """What each framework's module provides (the modules themselves satisfy it)."""

    def in_template(self, precompile_kernels: bool) -> KernelStatus | None: ...

    def prepare(self, setup: str | None) -> None: ...

    def warm_up(self, extras: Sequence[WarmUp] = (), setup: str | None = None) -> None: ...

    def threads(self) -> dict[str, int]: ...

    def before_snippet(self, graph: bool) -> None: ...

    def after_snippet(self, namespace: dict[str, Any], timings: Timings) -> None: ...


MODULES: dict[Framework, Side] = {"tensorflow": tensorflow, "pytorch": pytorch}


def of(framework: Framework) -> Side:
    return MODULES[framework]
