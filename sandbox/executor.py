"""The one interface the web side runs snippets through.

Two implementations: the in-process pool (`sandbox.pool.Pool`, the default)
and the client of remote workers (`sandbox.remote.client.RemoteExecutor`).
Both put a fair queue in front of their slots, so fairness per learner and
per class holds whichever one runs, and both say what their runs compute
with (`context`, part of the output cache's key) and how they are
(`stats()`, typed in `stats.py`).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from sandbox.fairqueue import Client
from sandbox.protocol import Device, RunRequest, RunResult
from sandbox.stats import PoolStats, RemoteStats


class ExecutorContext(BaseModel):
    """What an executor's runs compute with: part of the output cache's key."""

    device: str = ""  # as the driver reports it; "" on a CPU
    versions: dict[str, str] = Field(default_factory=dict)  # framework -> version


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

    def serves(self, device: Device) -> bool: ...  # a run for it would find a worker now

    def stats(self) -> PoolStats | RemoteStats: ...
