"""Each framework's own start-up, in one module per framework.

    template: `in_template`  imports it once, and what every spare inherits
    spare:    `warm_up`      pays its per-process start-up before code arrives
    run:      `before_snippet`, `after_snippet`   what its runs need around the code

Neither module imports its framework at import time: a PyTorch template
must never load TensorFlow, nor the reverse.
"""

from __future__ import annotations

from types import ModuleType

from sandbox.frameworks import pytorch, tensorflow
from sandbox.protocol import Framework

MODULES: dict[Framework, ModuleType] = {"tensorflow": tensorflow, "pytorch": pytorch}


def of(framework: Framework) -> ModuleType:
    return MODULES[framework]
