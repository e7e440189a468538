"""The run: one process, one snippet, then gone.

    supervisor ──fork, in new namespaces──> run (`become_run`)
        fd 1, 2: stdout, stderr     fd 3: its `RunOrder`
        fd 4: `SpareReady`, then `RunFinished`
        fd 5, 6: a port's only: the model file (read-only), the archive it writes

It starts life as a *ready spare*: fenced in, its framework warmed up
(`frameworks/`), waiting on a pipe for the order. The supervisor relays
stdout/stderr and the frames; the run trusts nothing either, and every
frame it writes is a model of `messages.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import os
import signal
import sys
import traceback
from collections.abc import Iterable, Sequence
from typing import NoReturn

from sandbox import execute, frameworks, gpu, wire
from sandbox.cgroups import RunCgroup
from sandbox.isolation import confine_run
from sandbox.limits import Limits
from sandbox.messages import RunFinished, RunOrder, SpareReady, SpawnSpare
from sandbox.namespaces import set_parent_death_signal
from sandbox.protocol import (
    CapturedArray,
    ErrorInfo,
    Framework,
    Graph,
    RunRequest,
    RunResult,
    RunStatus,
    Timings,
    ValueInfo,
    WarmUp,
)
from sandbox.rlimits import (
    apply_limits,
    limit_cpu_seconds,
    limit_processes,
    lower_priority,
    run_priority,
)

REQUEST_FD, RESULT_FD = 3, 4  # in the run
MODEL_FD, ARCHIVE_FD, INPUTS_FD = 5, 6, 7  # a port's run (`sandbox/porter/job.py`)


@dataclasses.dataclass(frozen=True)
class Pipes:
    """The run's four pipes, (read end, write end) each; the run writes all but `request`."""

    stdout: tuple[int, int]
    stderr: tuple[int, int]
    result: tuple[int, int]
    request: tuple[int, int]

    @classmethod
    def make(cls) -> Pipes:
        return cls(*(os.pipe2(os.O_CLOEXEC) for _ in range(4)))

    def all(self) -> tuple[tuple[int, int], ...]:
        return (self.stdout, self.stderr, self.result, self.request)

    def close(self) -> None:
        for r, w in self.all():
            os.close(r)
            os.close(w)

    def keep_parent_ends(self) -> int:
        """In the supervisor: close the run's ends; returns the request's write end."""
        for _, w in (self.stdout, self.stderr, self.result):
            os.close(w)
        os.close(self.request[0])
        return self.request[1]


@dataclasses.dataclass(frozen=True)
class HostFacts:
    device: str  # the CPU's model
    versions: dict[str, str]  # both frameworks', from their installed metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def _installed_versions() -> dict[str, str]:
    from importlib import metadata

    def version(*names: str) -> str:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return "not installed"

    return {"python": sys.version.split()[0], "torch": version("torch"),
            "tensorflow": version("tensorflow", "tensorflow-cpu"),
            "keras": version("keras"), "numpy": version("numpy")}


def host_facts() -> HostFacts:
    """The CPU and both frameworks' versions (from their installed metadata, no import).

    Read once in the template: every spare reports them without reading
    /proc or importing the framework its template left out.
    """
    return HostFacts(_cpu_model(), _installed_versions())


FACTS: HostFacts | None = None  # host_facts(), set by the template, inherited by every spare


def warm_up(framework: Framework, extras: Sequence[WarmUp] = (),
            gpu_memory_mb: int = Limits.gpu_memory_mb, fresh: bool = False,
            setup: str | None = None) -> SpareReady:
    """Pay one framework's per-process start-up now, before any code arrives.

    A spare serves one framework and comes from that framework's template: a
    PyTorch run never pays for TensorFlow's runtime (≈ 40 ms), nor for its
    share of the address space in every fork and exit, and the reverse. A
    snippet may still import the other framework; it then pays the import.
    `extras`: the optional TensorFlow warm-ups recent runs needed (reserve.py).
    Where the sandbox holds a GPU, the spare makes its own CUDA context first
    (capped at `gpu_memory_mb`), so the CPU warm-ups below find the device set.
    A `fresh` spare starts nothing: its snippet configures the runtime first.
    A prepared one (`setup`, `setups.py`) makes its setting or import first.
    """
    facts = FACTS or host_facts()
    device = facts.device
    side = frameworks.of(framework)
    side.prepare(setup)
    if gpu.present():
        device = gpu.prepare(framework, gpu_memory_mb, warm=not fresh)
    if not fresh:
        side.warm_up(extras, setup)
    threads = {"cpu_cores": os.cpu_count() or 1, **side.threads()}
    return SpareReady(framework=framework, device=device, versions=facts.versions,
                      threads=threads)


def rehearse() -> None:
    """Once in the template, before any fork: what every run does with the messages.

    A model's first validation or dump in a process sets up what later ones
    reuse; done here, every spare inherits that instead of paying for it
    (≈ 0.2 ms) in its run. Pure Python and pydantic: no framework op.
    """
    request = RunRequest(framework="pytorch", code="x = 1", capture={"x": "x"})
    order = RunOrder(request=request, wall_s=1.0, cpu_s=1)
    order = wire.parse_frame(RunOrder, wire.encode(order)[wire.HEADER.size:])
    result = RunResult(
        status=RunStatus.error, error=ErrorInfo(type="E", message="m", line=1),
        timings=Timings(wall_ms=1.0, cpu_ms=1.0), values=[ValueInfo(name="x", kind="number",
                                                                     preview="1")],
        captured={"x": CapturedArray(shape=[], dtype="<i8", data_b64="")},
        graphs=[Graph(kind="structure", title="t", svg="<svg/>", nodes=0)])
    wire.parse_frame(RunFinished, wire.encode(RunFinished.of(result))[wire.HEADER.size:])


def become_run(pipes: Pipes, owned: Iterable[int], workdir: str, spare: SpawnSpare,
               secure: bool, cgroup: RunCgroup | None, files: tuple[int, ...] = ()) -> NoReturn:
    """In the forked child: the run's descriptors and nothing else, then serve one order."""
    code = 0
    try:
        set_parent_death_signal()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in owned:  # the control socket, other spares' pipes and sockets
            with contextlib.suppress(OSError):
                os.close(fd)
        # The run's own descriptors as 1 and 2 (stdout, stderr), 3 (its order) and
        # 4 (its result), whatever numbers the template's many pipes had.
        keep = {1: pipes.stdout[1], 2: pipes.stderr[1],
                REQUEST_FD: pipes.request[0], RESULT_FD: pipes.result[1],
                **dict(zip((MODEL_FD, ARCHIVE_FD, INPUTS_FD), files, strict=False))}
        moved = {to: fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for to, fd in keep.items()}
        pipes.close()
        for fd in files:
            os.close(fd)
        for to, fd in moved.items():
            os.dup2(fd, to, inheritable=to <= 2)  # a subprocess inherits stdio only
            os.close(fd)
        os.chdir(workdir)
        serve_one(REQUEST_FD, RESULT_FD, spare, secure, cgroup)
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        os._exit(code)


def _streams_unbuffered() -> None:
    # Written straight through, so a run killed mid-way still shows what it printed.
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)


def serve_one(request_fd: int, result_fd: int, spare: SpawnSpare, secure: bool,
              cgroup: RunCgroup | None = None) -> None:
    limits = spare.limits
    lower_priority()
    if secure:
        if cgroup is not None:
            cgroup.join()  # while still root: after this the run can't leave it
        confine_run(limits, spare.slot)
    else:
        apply_limits(limits)
    _streams_unbuffered()
    if not secure:  # keep the frameworks' temp files in the run's own folder
        import tempfile

        os.environ["TMPDIR"] = tempfile.tempdir = os.getcwd()
    ready = warm_up(spare.framework, spare.warm_ups, limits.gpu_memory_mb, spare.fresh,
                    spare.setup)
    wire.write_frame(result_fd, ready)
    body = wire.read_body(request_fd)
    if body is None:
        return
    order = wire.parse_frame(RunOrder, body)
    request = order.request
    run_priority()
    if order.shared_tasks:
        limit_processes(limits, order.shared_tasks)
    limit_cpu_seconds(order.cpu_s)
    if order.port is not None:
        wire.write_frame(result_fd, RunFinished.of(_port(order, ready)))
        return
    side = frameworks.of(spare.framework)
    side.before_snippet(request.graph)
    me = os.getpid()
    result, namespace = execute.run_snippet(request.code, request.repeat, request.capture)
    if os.getpid() != me:  # a child the snippet forked finished the snippet: not our result
        os._exit(0)
    sys.stdout.flush()
    if result.timings is not None:
        result.timings.threads = ready.threads
        side.after_snippet(namespace, result.timings)
    if request.graph:
        from sandbox import graphs

        result.graphs = graphs.draw(namespace, request.framework, request.draw)
    result.device, result.versions = ready.device, ready.versions
    result.framework = request.framework
    wire.write_frame(result_fd, RunFinished.of(result))


def _port(order: RunOrder, ready: SpareReady) -> RunResult:
    """A port's run: the archive goes to ARCHIVE_FD; the result says how the run went."""
    from sandbox.porter import job

    assert order.port is not None
    try:
        result = job.run_port(order.port, MODEL_FD if order.port.filename else None, ARCHIVE_FD,
                              INPUTS_FD if order.port.inputs else None)
    except BaseException as exc:  # the trusted side reports it as a failed port
        result = job.error_result(exc)
    result.device, result.versions = ready.device, ready.versions
    return result
