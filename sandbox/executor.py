"""The one interface the web side runs snippets through.

Two implementations: the in-process pool (`sandbox.pool.Pool`, the default)
and the client of remote workers (`sandbox.remote.client.RemoteExecutor`).
Both put a fair queue in front of their slots, so fairness per learner and
per class holds whichever one runs, and both say what their runs compute
with (`context`, part of the output cache's key) and how they are
(`stats()`, typed in `stats.py`).

Ports (`port()`) run only in the in-process pool: the model file travels to
the run as a descriptor, which a remote worker can't be handed; the remote
executor raises `PortsUnavailable` (the web side answers 503 with its text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from sandbox.fairqueue import Client
from sandbox.protocol import Device, PortOrder, PortReport, RunRequest, RunResult
from sandbox.stats import PoolStats, RemoteStats


class ExecutorContext(BaseModel):
    """What an executor's runs compute with: part of the output cache's key."""

    device: str = ""  # as the driver reports it; "" on a CPU
    versions: dict[str, str] = Field(default_factory=dict)  # framework -> version


class PortsUnavailable(RuntimeError):
    """This executor can't port models; the message says why, for the user."""


# The files a port with a module leaves in `out_dir`, each validated and capped
# on the trusted side (`sandbox/port_files.py`) before it lands there.
PORT_FILES = ("model.py", "weights.safetensors", "port_report.json", "check.py", "port.zip")


class Positions(Protocol):
    def position(self, client: Client) -> int | None: ...


class Executor(Protocol):
    @property
    def context(self) -> ExecutorContext: ...

    @property
    def size(self) -> int: ...  # runs at once

    @property
    def queue(self) -> Positions: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, request: RunRequest, client: Client) -> RunResult: ...

    async def port(self, order: PortOrder, model: Path | None, out_dir: Path,
                   client: Client, inputs: Path | None = None) -> PortReport:
        """Port a Keras model in the sandbox, as a run with the port's limits.

        `model`: the uploaded file when `order.filename` is set (None with
        `order.code`); only opened here, read-only, and handed to the run.
        `inputs`: the user's .npy/.npz when `order.inputs` is set, handed over
        the same way and proved beside the seeded batches.
        `out_dir`: made by the caller, empty. When the port produced a module
        (proved, partial, or a failed proof), the files of `PORT_FILES` are
        written there; otherwise (`report.error`: not a model, a snippet that
        raised, the run's limits...) it stays empty. Raises `QueueFull` like
        `run`, and `PortsUnavailable` where ports can't run at all.
        """
        ...

    def serves(self, device: Device) -> bool: ...  # a run for it would find a worker now

    def stats(self) -> PoolStats | RemoteStats: ...
