"""The messages between the pool, the templates, the supervisors and the runs.

    pool ──SpawnSpare──> template ──SpareSpawned (+ the spare's socket)──> pool
    template ──TemplateHello──> pool, once, when its framework is imported
    run ──SpareReady──> supervisor ──> pool         the spare is warm
    pool ──RunOrder──> supervisor ──> run           its one request
    pool ──SpawnSpare + 2 fds──> template           a port's spare: the model file, the archive
    run ──RunFinished──> supervisor ──> pool        how it went

Each is a model, framed as length-prefixed JSON (`wire.py`) and validated
on the receiving side; what a run sends is an attacker's input, capped by
the public contract's limits (`protocol.py`). Nothing else crosses a
process boundary inside the sandbox.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from sandbox.limits import Limits
from sandbox.protocol import (
    MAX_CAPTURED,
    MAX_MAP_ITEMS,
    SETUP_PATTERN,
    CapturedArray,
    Framework,
    PortOrder,
    RunRequest,
    RunResult,
    Short,
    StrictModel,
    WarmUp,
)

# Frames from the trusted side are capped too, so a bug can't grow a buffer
# without end: an order holds a request (code ≤ MAX_CODE_BYTES) and its
# limits; a SpareReady, a device string and a few versions.
MAX_ORDER_BYTES = 2 * 1024 * 1024
MAX_READY_BYTES = 1024 * 1024


class CgroupSpec(StrictModel):
    base: str  # the pool's memory cgroup folder
    version: Literal[1, 2]
    cpu_base: str | None = None  # its CPU cgroup folder (v2: the same), where the host has one


PORT_SPARE_FILES = 3  # the descriptors beside a port's SpawnSpare (see `port`)


class SpawnSpare(StrictModel):
    """pool → template: fork a supervisor and its spare for this slot."""

    type: Literal["spawn"] = "spawn"
    id: int
    slot: int = Field(ge=0, lt=256)
    framework: Framework  # the one framework the spare warms up
    warm_ups: list[WarmUp] = Field(default_factory=list, max_length=2)
    # Start no framework runtime: made for one snippet that configures the
    # runtime before its first op (`reserve.needs_fresh_runtime`).
    fresh: bool = False
    # A prepared spare (`setups.py`): the setting or import it makes first.
    setup: str | None = Field(default=None, pattern=SETUP_PATTERN)
    name: str = Field(pattern=r"^[a-z0-9-]{1,64}$")  # unique per spare: its cgroup's folder
    limits: Limits  # pydantic validates the dataclass's fields on the way in
    cgroup: CgroupSpec | None = None
    # A port's spare (fresh, with the port's limits): the descriptors passed
    # alongside, the model file (read-only), the archive it writes and the
    # user's inputs (read-only), become the run's `runner.MODEL_FD`,
    # `runner.ARCHIVE_FD` and `runner.INPUTS_FD`.
    port: bool = False


class KernelState(enum.StrEnum):
    done = "done"  # generated in the template: every spare inherits them
    off = "off"  # turned off (Limits.onednn_precompile): each spare generates its own
    failed = "failed"  # tried and given up (the reason says why): as off


class KernelStatus(StrictModel):
    """What TensorFlow's template did about oneDNN's matmul kernels (`onednn.py`)."""

    state: KernelState
    reason: str = Field(default="", max_length=200)  # why not, when not done
    tensorflow: Short = ""  # the version this template imported
    verified_on: Short = ""  # the version `onednn.py` was last verified on

    def words(self) -> str:
        """As /api/health says it."""
        if self.state is KernelState.done:
            if self.tensorflow != self.verified_on:  # tried, and right, but say so
                return (f"precompiled in the template (TensorFlow {self.tensorflow}; "
                        f"verified on {self.verified_on})")
            return "precompiled in the template"
        if self.state is KernelState.off:
            return "not precompiled: turned off"
        return f"not precompiled: {self.reason}"


class TemplateHello(StrictModel):
    """template → pool, once: its framework is imported."""

    type: Literal["hello"] = "hello"
    pid: int
    kernels: KernelStatus | None = None  # TensorFlow's template only


class SpareSpawned(StrictModel):
    """template → pool, with the new spare's socket passed alongside."""

    type: Literal["spare"] = "spare"
    id: int
    slot: int
    framework: Framework
    pid: int


class SpareReady(StrictModel):
    """run → supervisor → pool: warmed up, waiting for its one request."""

    type: Literal["ready"] = "ready"
    framework: Framework
    device: Short
    versions: dict[Short, Short] = Field(max_length=MAX_MAP_ITEMS)
    threads: dict[Short, int] = Field(max_length=MAX_MAP_ITEMS)


class RunOrder(StrictModel):
    """pool → supervisor → run: the request and its limits."""

    type: Literal["run"] = "run"
    request: RunRequest
    port: PortOrder | None = None  # a port's spare serves this instead of the request
    wall_s: float = Field(gt=0)
    cpu_s: int = Field(gt=0)
    # rootless only, filled in by the supervisor: tasks the sandbox's shared
    # uid holds as the run starts (RLIMIT_NPROC counts them with the run's own)
    shared_tasks: int = Field(default=0, ge=0)


class RunFinished(StrictModel):
    """run → supervisor → pool: how it went (the supervisor adds the streams).

    The result's captured arrays travel beside it, since a result leaves them
    out of its JSON (the web API never shows them); they are back in
    `result.captured` once the frame is parsed.
    """

    type: Literal["result"] = "result"
    result: RunResult
    captured: dict[Short, CapturedArray] = Field(default_factory=dict, max_length=MAX_CAPTURED)

    @classmethod
    def of(cls, result: RunResult) -> RunFinished:
        """The frame for `result`; one past a cap is sent as it is, for the receiver to refuse."""
        try:
            return cls(result=result, captured=result.captured)
        except ValidationError:
            return cls.model_construct(result=result, captured=result.captured)

    @model_validator(mode="after")
    def _captured_back_in_the_result(self) -> RunFinished:
        if self.captured:
            self.result.captured = self.captured
        return self

    def to_task_result(self) -> dict[str, object]:
        """As a remote worker's Celery task returns it (JSON)."""
        return self.model_dump(mode="json")
