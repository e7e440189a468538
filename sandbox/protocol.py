"""The one contract between the web app and the sandbox workers.

Requests and results are named in pairs (`RunRequest` / `RunResult`). The
web side builds a `RunRequest`, the pool hands it to a ready spare, and the
spare's answer comes back validated as a `RunResult`. Nothing else crosses
the boundary.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Framework = Literal["tensorflow", "pytorch"]
FRAMEWORKS: tuple[Framework, ...] = ("tensorflow", "pytorch")

MAX_CODE_BYTES = 64 * 1024
MAX_REPEAT = 200

# A line made of exactly this splits a snippet into untimed setup (above)
# and the timed part (below). Lesson packs use the same marker.
TIMED_MARKER = "# %% timed"


class RunStatus(enum.StrEnum):
    ok = "ok"
    error = "error"  # the snippet raised
    timeout = "timeout"  # wall or CPU time ran out
    memory = "memory"  # the memory limit was hit
    killed = "killed"  # ended by a signal or by the sandbox going away
    output_limit = "output_limit"  # printed more than the per-stream cap
    rejected = "rejected"  # never ran: queue full, shutting down, bad input


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_code(code: str) -> str:
    if "\x00" in code:
        raise ValueError("code must not contain NUL bytes")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise ValueError(f"code is larger than {MAX_CODE_BYTES // 1024} KiB")
    return code


Code = Annotated[str, Field(description="Python source of the snippet")]


class RunRequest(_Strict):
    framework: Framework
    code: Code
    timeout_s: float | None = Field(default=None, gt=0, description="capped by the server")
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)
    graph: bool = False
    # name -> Python expression evaluated after the snippet; the value is sent
    # back as a full array so the web side can compare two runs.
    capture: dict[str, str] = Field(default_factory=dict, max_length=32)
    # what to draw when graph is true (a name in the snippet); None: default
    draw: str | None = None

    @field_validator("code")
    @classmethod
    def _code_fits(cls, code: str) -> str:
        return check_code(code)


class ErrorInfo(BaseModel):
    type: str
    message: str
    line: int | None = None  # in the snippet's own numbering, 1-based
    traceback: str = ""


class ValueInfo(BaseModel):
    name: str
    kind: str  # "torch.Tensor", "tf.Tensor", "tf.Variable", "ndarray", "number", ...
    shape: list[int] | None = None
    dtype: str | None = None
    device: str | None = None
    preview: str
    requires_grad: bool | None = None


class Timings(BaseModel):
    wall_ms: float
    cpu_ms: float
    # with repeat > 1: the first (cold) run apart from the steady state
    runs: int = 1
    first_ms: float | None = None
    median_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    trace_ms: float | None = None  # time TF spent tracing tf.functions in the first run
    setup_ms: float | None = None
    threads: dict[str, int] = Field(default_factory=dict)


class Graph(BaseModel):
    kind: Literal["autograd", "tf_function", "structure"]
    title: str
    svg: str
    nodes: int
    truncated: bool = False


class CapturedArray(BaseModel):
    """A value the web side asked for by name, as raw bytes."""

    shape: list[int] | None = None
    dtype: str | None = None
    data_b64: str | None = None
    missing: str | None = None  # why the value could not be captured


class RunResult(BaseModel):
    status: RunStatus
    framework: Framework | None = None
    stdout: str = ""
    stderr: str = ""
    error: ErrorInfo | None = None
    values: list[ValueInfo] = Field(default_factory=list)
    timings: Timings | None = None
    device: str = ""
    versions: dict[str, str] = Field(default_factory=dict)
    graphs: list[Graph] = Field(default_factory=list)
    captured: dict[str, CapturedArray] = Field(default_factory=dict, exclude=True)

    @classmethod
    def failed(cls, status: RunStatus, type_: str, message: str, **kw: object) -> RunResult:
        return cls(status=status, error=ErrorInfo(type=type_, message=message), **kw)  # type: ignore[arg-type]
