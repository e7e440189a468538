"""The run: one process, one snippet, then gone.

It starts life as a *ready spare*: fenced in, frameworks warmed up (TF's
runtime and AutoGraph start-up, torch's first op), waiting on a pipe for
the request. The supervisor relays stdout/stderr and the result frame.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from sandbox import execute, gpu, wire
from sandbox.cgroups import RunCgroup
from sandbox.limits import Limits


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def _warm_torch() -> None:
    import torch

    # The ops nearly every lesson uses: their first call in a process pays for
    # kernel lookup and oneDNN/MKL set-up (a first matmul alone is ~15 ms).
    w = torch.randn(4, 4, requires_grad=True)
    torch.relu(w @ torch.ones(4, 4)).sum().backward()


def _warm_tensorflow() -> None:
    import tensorflow as tf

    # TF's eager runtime (thread pools, device set-up) starts at its first op;
    # a first matmul also generates its CPU kernel.
    x = tf.ones([4, 4])
    tf.reduce_sum(tf.nn.relu(x @ x)).numpy()


def _warm_tf_gradients() -> None:
    import tensorflow as tf

    v = tf.Variable(tf.random.normal([4, 4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.relu(tf.matmul(v, tf.ones([4, 4]))))
    tape.gradient(loss, v).numpy()


def _warm_tf_functions() -> None:
    import tensorflow as tf

    @tf.function
    def _double(x: Any) -> Any:
        return x * 2

    _double(tf.constant(1.0)).numpy()  # starts AutoGraph's machinery


WARM_UPS = {"pytorch": _warm_torch, "tensorflow": _warm_tensorflow}
OPTIONAL_WARM_UPS = {"gradients": _warm_tf_gradients, "functions": _warm_tf_functions}


def host_facts() -> dict[str, Any]:
    """The CPU and both frameworks' versions (from their installed metadata, no import).

    Read once in the template: every spare reports them without reading
    /proc or importing the framework its template left out.
    """
    return {"device": _cpu_model(), "versions": _installed_versions()}


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


FACTS: dict[str, Any] = {}  # host_facts(), set by the template, inherited by every spare


def warm_up(framework: str, extras: Sequence[str] = (),
            gpu_memory_mb: int = Limits.gpu_memory_mb, fresh: bool = False) -> dict[str, Any]:
    """Pay one framework's per-process start-up now, before any code arrives.

    A spare serves one framework and comes from that framework's template: a
    PyTorch run never pays for TensorFlow's runtime (≈ 40 ms), nor for its
    share of the address space in every fork and exit, and the reverse. A
    snippet may still import the other framework; it then pays the import.
    `extras`: the optional TensorFlow warm-ups recent runs needed (reserve.py).
    Where the sandbox holds a GPU, the spare makes its own CUDA context first
    (capped at `gpu_memory_mb`), so the CPU warm-ups below find the device set.
    A `fresh` spare starts nothing: its snippet configures the runtime first.
    """
    facts = FACTS or host_facts()
    device = facts["device"]
    if gpu.present():
        device = gpu.prepare(framework, gpu_memory_mb, warm=not fresh)
    if not fresh:
        WARM_UPS[framework]()
        for name in extras:
            OPTIONAL_WARM_UPS[name]()
    threads = {"cpu_cores": os.cpu_count() or 1}
    if framework == "pytorch":
        import torch

        threads.update(torch_intraop=torch.get_num_threads(),
                       torch_interop=torch.get_num_interop_threads())
    return {"device": device, "versions": facts["versions"], "threads": threads}


def _streams_unbuffered() -> None:
    # Written straight through, so a run killed mid-way still shows what it printed.
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), encoding="utf-8",
                                  errors="backslashreplace", write_through=True)


def _trace_ms(namespace: dict[str, Any], timings: dict[str, Any]) -> float | None:
    """First-run excess when the snippet traced tf.functions: the cost of tracing."""
    traced = any(type(v).__name__ == "Function" and hasattr(v, "experimental_get_tracing_count")
                 and v.experimental_get_tracing_count() > 0 for v in namespace.values())
    if traced and timings.get("first_ms") is not None and timings.get("median_ms") is not None:
        return max(timings["first_ms"] - timings["median_ms"], 0.0)
    return None


def serve_one(request_fd: int, result_fd: int, limits: Limits, slot: int, secure: bool,
              framework: str, warm_ups: Sequence[str] = (), fresh: bool = False,
              cgroup: RunCgroup | None = None) -> None:
    from sandbox.isolation import apply_limits, confine_run, lower_priority

    lower_priority()
    if secure:
        if cgroup is not None:
            cgroup.join()  # while still root: after this the run can't leave it
        confine_run(limits, slot)
    else:
        apply_limits(limits)
    _streams_unbuffered()
    if not secure:  # keep the frameworks' temp files in the run's own folder
        import tempfile

        os.environ["TMPDIR"] = tempfile.tempdir = os.getcwd()
    context = warm_up(framework, warm_ups, limits.gpu_memory_mb, fresh)
    wire.write_frame(result_fd, {"type": "ready", "framework": framework, **context})
    message = wire.read_frame(request_fd)
    if message is None:
        return
    request = message["request"]
    from sandbox.isolation import limit_cpu_seconds, limit_processes, run_priority

    run_priority()
    if message.get("shared_tasks"):
        limit_processes(limits, int(message["shared_tasks"]))
    limit_cpu_seconds(int(message.get("cpu_s", limits.cpu_s)))
    if request.get("graph") and framework == "tensorflow":
        from sandbox import graphs

        graphs.install_tracking()
    me = os.getpid()
    result, namespace = execute.run_snippet(request["code"], request.get("repeat", 1),
                                            request.get("capture") or {})
    if os.getpid() != me:  # a child the snippet forked finished the snippet: not our result
        os._exit(0)
    sys.stdout.flush()
    if result.get("timings") is not None:
        result["timings"]["threads"] = context["threads"]
        if request["framework"] == "tensorflow":
            result["timings"]["trace_ms"] = _trace_ms(namespace, result["timings"])
    if request.get("graph"):
        from sandbox import graphs

        result["graphs"] = graphs.draw(namespace, request["framework"], request.get("draw"))
    result.update(device=context["device"], versions=context["versions"],
                  framework=request["framework"])
    wire.write_frame(result_fd, {"type": "result", "result": result})
