"""The messages between the web server and remote workers, through Redis.

    web ──RemoteRun──> the device's Celery queue ──> a worker's pool
    worker ──WorkerBeat──> a Redis key with a TTL ──> every web server

A run's answer is the pool's own `messages.RunFinished`, as the task's
result. The web server trusts neither: each is validated against its model
and the public contract's caps (`protocol.py`) before it is used.
"""

from __future__ import annotations

from pydantic import Field

from sandbox.protocol import MAX_MAP_ITEMS, Device, RunRequest, Short, StrictModel


class RemoteRun(StrictModel):
    """web → worker, through the device's queue: one request, and when the web stops waiting."""

    request: RunRequest
    deadline: float  # Unix time; a worker that gets the run later drops it unrun


class WorkerBeat(StrictModel):
    """worker → web, every couple of seconds (a Redis key with a TTL): who, what, how free."""

    name: Short  # the Celery node name; a result's `worker`
    device: Device
    device_name: Short  # the GPU's name, or the CPU's model
    memory_mb: int | None = Field(default=None, ge=0)  # the GPU's memory
    cuda: Short | None = None  # the driver's CUDA version
    versions: dict[Short, Short] = Field(default_factory=dict, max_length=MAX_MAP_ITEMS)
    slots: int = Field(ge=1, le=256)
    busy: int = Field(ge=0)
    free: int = Field(ge=0)
    degraded: Short | None = None  # the worker's sandbox is restarting: it takes no runs
    sandbox: Short = ""  # how its runs are isolated ("insecure" when they are not)
