"""The public contract: what the web side asks of the sandbox, and what it gets back.

The web side builds a `RunRequest` and gets a `RunResult`; everything a
result holds, its status, the frameworks and devices a run may name, the
caps and the timed-part marker are here. How the pool, the template and
the runs pass these along is theirs (`messages.py`), and so is how the web
server and remote workers do (`remote/messages.py`).

Everything a run sends is an attacker's input: every string, list and map
in a result has a hard cap here, and the trusted side (the supervisor, then
the pool) validates each frame against these models before using it.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Framework = Literal["tensorflow", "pytorch"]
FRAMEWORKS: tuple[Framework, ...] = ("tensorflow", "pytorch")
Device = Literal["cpu", "gpu"]  # the kind of worker a run asks for (remote workers)
DEVICES: tuple[Device, ...] = ("cpu", "gpu")
WarmUp = Literal["gradients", "functions"]  # a TF spare's optional warm-ups (reserve.py)
# A prepared spare's kind (setups.py): an import, a first compile, TensorFlow's CPU split.
SETUP_PATTERN = r"^(with-torch|with-tensorflow|keras-on-torch|compiler|onnx-export|cpus-[2-8])$"

MAX_CODE_BYTES = 64 * 1024
MAX_REPEAT = 200

# Hard caps on what a result may hold, whatever the run sends. Generous
# next to what the run itself produces (values.py, graphs/), tight next to
# what a server can afford to keep per result.
MAX_STREAM_CHARS = 4 * 1024 * 1024  # stdout / stderr, after the supervisor's byte cap
MAX_VALUES = 64
MAX_SHAPE_DIMS = 32
MAX_SHORT_CHARS = 256  # names, kinds, dtypes, devices, titles, version strings
MAX_PREVIEW_CHARS = 2000
MAX_MESSAGE_CHARS = 8000
MAX_TRACEBACK_CHARS = 32000
MAX_GRAPHS = 8
MAX_SVG_CHARS = 1024 * 1024
MAX_CAPTURED = 32
MAX_CAPTURE_B64_CHARS = 16 * 1024 * 1024
MAX_MAP_ITEMS = 16  # versions, thread counts

Short = Annotated[str, Field(max_length=MAX_SHORT_CHARS)]

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


class StrictModel(BaseModel):
    """A message that refuses fields it doesn't know."""

    model_config = ConfigDict(extra="forbid")


def check_code(code: str) -> str:
    if "\x00" in code:
        raise ValueError("code must not contain NUL bytes")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise ValueError(f"code is larger than {MAX_CODE_BYTES // 1024} KiB")
    return code


Code = Annotated[str, Field(description="Python source of the snippet")]


class RunRequest(StrictModel):
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
    # Which kind of remote worker runs it; the in-process pool runs every
    # request itself, whatever it asks for.
    device: Device = "cpu"

    @field_validator("code")
    @classmethod
    def _code_fits(cls, code: str) -> str:
        return check_code(code)


class ErrorInfo(BaseModel):
    type: Short
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]
    line: int | None = None  # in the snippet's own numbering, 1-based
    traceback: Annotated[str, Field(max_length=MAX_TRACEBACK_CHARS)] = ""


class ValueInfo(BaseModel):
    name: Short
    kind: Short  # "torch.Tensor", "tf.Tensor", "tf.Variable", "ndarray", "number", ...
    shape: Annotated[list[int], Field(max_length=MAX_SHAPE_DIMS)] | None = None
    dtype: Short | None = None
    device: Short | None = None
    preview: Annotated[str, Field(max_length=MAX_PREVIEW_CHARS)]
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
    threads: dict[Short, int] = Field(default_factory=dict, max_length=MAX_MAP_ITEMS)


class Graph(BaseModel):
    kind: Literal["autograd", "tf_function", "structure"]
    title: Short
    svg: Annotated[str, Field(max_length=MAX_SVG_CHARS)]
    nodes: int
    truncated: bool = False


class CapturedArray(BaseModel):
    """A value the web side asked for by name, as raw bytes."""

    shape: Annotated[list[int], Field(max_length=MAX_SHAPE_DIMS)] | None = None
    dtype: Short | None = None
    data_b64: Annotated[str, Field(max_length=MAX_CAPTURE_B64_CHARS)] | None = None
    missing: Annotated[str, Field(max_length=MAX_PREVIEW_CHARS)] | None = None


class RunResult(BaseModel):
    status: RunStatus
    framework: Framework | None = None
    stdout: Annotated[str, Field(max_length=MAX_STREAM_CHARS)] = ""
    stderr: Annotated[str, Field(max_length=MAX_STREAM_CHARS)] = ""
    error: ErrorInfo | None = None
    values: list[ValueInfo] = Field(default_factory=list, max_length=MAX_VALUES)
    values_not_shown: int = Field(0, ge=0)  # values past the ones listed
    timings: Timings | None = None
    device: Short = ""
    versions: dict[Short, Short] = Field(default_factory=dict, max_length=MAX_MAP_ITEMS)
    graphs: list[Graph] = Field(default_factory=list, max_length=MAX_GRAPHS)
    worker: Short = ""  # the remote worker that ran it; "" for the in-process pool
    captured: dict[Short, CapturedArray] = Field(default_factory=dict, exclude=True,
                                                 max_length=MAX_CAPTURED)

    @classmethod
    def failed(cls, status: RunStatus, type_: str, message: str, **kw: object) -> RunResult:
        return cls(status=status, error=ErrorInfo(type=type_, message=message), **kw)  # type: ignore[arg-type]


# ---- ports: a Keras model in, PyTorch source, weights and a proof out ----------------

# A port's report is small next to its files: the source and the summary of a
# DenseNet121 are ~100 KB each, its layers ~430 rows. The files themselves
# (model.py, weights.safetensors) are capped where the trusted side checks them
# (`sandbox/port_files.py`).
MAX_MODULE_SOURCE_CHARS = 2 * 1024 * 1024
MAX_SUMMARY_CHARS = 1024 * 1024
MAX_PORT_LAYERS = 4096
MAX_CONFIG_CHARS = 4000
MAX_NOTES = 16
MODEL_SUFFIXES = (".keras", ".h5")
INPUTS_SUFFIXES = (".npy", ".npz")  # the user's own inputs for the proof
InputsSuffix = Literal[".npy", ".npz"]
MAX_BATCHES = 8
PortLayout = Literal["nhwc", "nchw"]
PortStatus = Literal["proved", "partial", "failed"]
LayerStatus = Literal["pass", "fail", "not run", "stub"]
Message = Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]


class PortOrder(StrictModel):
    """Port one Keras model: a snippet that builds it, or a model file given beside the order.

    With `code`, the snippet runs in the sandbox and the model is its variable
    `model`, else the last `keras.Model` it left in scope. With `filename`, the
    file itself travels beside the order (the executor's `model` argument);
    only its suffix is read here: it says the format (`.keras`: Keras 3,
    `.h5`: Keras 2 / tf.keras). Exactly one of the two.
    """

    code: Code | None = None
    filename: Short | None = None
    layout: PortLayout = "nhwc"  # nchw: the module takes channels-first inputs
    atol: float = Field(default=1e-5, ge=0, le=1.0)
    rtol: float = Field(default=1e-4, ge=0, le=1.0)
    onnx: bool = False  # also compare both models exported to ONNX, in onnxruntime
    # The user's own inputs, proved beside the seeded ones: a file that travels
    # beside the order as the model does; this says its format (.npy: one
    # array, .npz: arrays named after the model's inputs, or arr_0, arr_1...).
    inputs: InputsSuffix | None = None

    @field_validator("code")
    @classmethod
    def _code_fits(cls, code: str | None) -> str | None:
        return None if code is None else check_code(code)

    @field_validator("filename")
    @classmethod
    def _a_model_file(cls, name: str | None) -> str | None:
        if name is None:
            return None
        if "/" in name or "\\" in name or "\x00" in name:
            raise ValueError("filename is a file's name, not a path")
        if not name.lower().endswith(MODEL_SUFFIXES):
            raise ValueError("a model file ends in .keras (Keras 3) or .h5 (Keras 2 / tf.keras)")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> PortOrder:
        if (self.code is None) == (self.filename is None):
            raise ValueError("a port takes a snippet (code) or a model file (filename), "
                             "exactly one")
        return self

    @property
    def suffix(self) -> str | None:
        return None if self.filename is None else "." + self.filename.lower().rsplit(".", 1)[1]


class PortLayer(BaseModel):
    """One Keras layer's row of the proof: the attribute it became and how close it came.

    An error is None where nothing was compared (a stub, a layer not run) or
    the shapes differ (status "fail").
    """

    name: Short
    class_name: Short
    attribute: Short  # dotted path in the module; "" for an InputLayer
    shape: Annotated[list[int], Field(max_length=MAX_SHAPE_DIMS)] = Field(default_factory=list)
    max_abs_err: float | None = None
    max_rel_err: float | None = None  # relative to the largest Keras value of the output
    status: LayerStatus = "not run"


class PortTrap(BaseModel):
    """A trap the port applied, and the lesson section teaching it (None: none yet)."""

    layer: Short
    key: Short
    text: Annotated[str, Field(max_length=MAX_PREVIEW_CHARS)]
    lesson: Short | None = None
    section: Short | None = None


class PortStub(BaseModel):
    """A layer the porter could not convert: model.py holds a stub for it."""

    name: Short
    class_name: Short
    config: Annotated[str, Field(max_length=MAX_CONFIG_CHARS)] = ""  # JSON, cut to the cap


class OnnxComparison(BaseModel):
    """Both models exported to ONNX and run in onnxruntime on the proof's inputs."""

    status: Literal["pass", "fail", "error"]
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    message: Message = ""  # why "error": which export or run failed


class PortReport(BaseModel):
    """What a port did: `status` and the proof, or `error` when no model could be ported.

    "proved": every layer and output within tolerance; "partial": stubs for
    unsupported layers, everything before the first stub proved; "failed":
    a mismatch, a module that crashes, or no model (`error` says why: not a
    model, a truncated file, a snippet that raised, a model with no inputs,
    the sandbox's limits).
    """

    status: PortStatus
    class_name: Short = ""
    module_source: Annotated[str, Field(max_length=MAX_MODULE_SOURCE_CHARS)] = ""
    keras_summary: Annotated[str, Field(max_length=MAX_SUMMARY_CHARS)] = ""
    layers: list[PortLayer] = Field(default_factory=list, max_length=MAX_PORT_LAYERS)
    outputs: list[PortLayer] = Field(default_factory=list, max_length=MAX_VALUES)
    traps: list[PortTrap] = Field(default_factory=list, max_length=MAX_PORT_LAYERS)
    unsupported: list[PortStub] = Field(default_factory=list, max_length=MAX_PORT_LAYERS)
    notes: list[Message] = Field(default_factory=list, max_length=MAX_NOTES)
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    atol: float = 1e-5
    rtol: float = 1e-4
    layout: PortLayout = "nhwc"
    onnx: OnnxComparison | None = None
    # The batches both models ran on, in words: the seeded ones, and "your inputs".
    batches: list[Short] = Field(default_factory=list, max_length=MAX_BATCHES)
    error: ErrorInfo | None = None
    wall_ms: float = 0.0

    @classmethod
    def failed(cls, type_: str, message: str, order: PortOrder | None = None,
               **kw: object) -> PortReport:
        """A port that produced no module: why, in words the page can show."""
        tolerance = {} if order is None else {"atol": order.atol, "rtol": order.rtol,
                                               "layout": order.layout}
        return cls(status="failed", error=ErrorInfo(type=type_[:MAX_SHORT_CHARS],
                                                    message=message[:MAX_MESSAGE_CHARS]),
                   **tolerance, **kw)  # type: ignore[arg-type]
