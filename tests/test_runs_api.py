"""POST /api/runs, /api/pairs and GET /api/health through a real server and sandbox."""

from __future__ import annotations

import json
import time

import httpx


def run(api: httpx.Client, framework: str, code: str, **extra: object) -> dict:
    response = api.post("/api/runs", json={"framework": framework, "code": code, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_pytorch_run_returns_output_values_and_timings(api: httpx.Client) -> None:
    result = run(api, "pytorch", "import torch\nx = torch.arange(6.).reshape(2, 3)\nprint(x.sum().item())\nn = 3")
    assert result["status"] == "ok"
    assert result["stdout"] == "15.0\n"
    values = {v["name"]: v for v in result["values"]}
    assert values["x"]["shape"] == [2, 3] and values["x"]["dtype"] == "float32"
    assert values["x"]["device"] == "cpu" and values["x"]["kind"] == "torch.Tensor"
    assert values["n"]["preview"] == "3"
    assert result["timings"]["wall_ms"] > 0 and result["versions"]["torch"].startswith("2.13")
    assert result["device"]


def test_tensorflow_run_returns_output_and_values(api: httpx.Client) -> None:
    result = run(api, "tensorflow", "import tensorflow as tf\nv = tf.Variable([[1., 2.]])\ny = v * 2\nprint(y.numpy().tolist())")
    assert result["status"] == "ok", result
    assert result["stdout"] == "[[2.0, 4.0]]\n"
    kinds = {v["name"]: v["kind"] for v in result["values"]}
    assert kinds == {"v": "tf.Variable", "y": "tf.Tensor"}
    assert result["versions"]["tensorflow"].startswith("2.21")


def test_each_framework_runs_in_a_spare_without_the_other_framework(api: httpx.Client) -> None:
    # One template per framework: a PyTorch spare never carries TensorFlow (nor
    # the reverse), yet a snippet may still import it, and results name both versions.
    check = "import sys\nprint({m!r} in sys.modules)\n"
    for framework, other in (("pytorch", "tensorflow"), ("tensorflow", "torch")):
        result = run(api, framework, check.format(m=other))
        assert result["stdout"] == "False\n", result
        assert {"torch", "tensorflow", "keras", "numpy"} <= result["versions"].keys()
    crossed = run(api, "pytorch", "import tensorflow as tf\nprint(int(tf.reduce_sum(tf.ones([2]))))",
                  timeout_s=30)
    assert crossed["status"] == "ok" and crossed["stdout"] == "2\n", crossed


TENSORBOARD = """
import sys
from torch.utils.tensorboard import SummaryWriter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
writer = SummaryWriter("logs")
writer.add_scalar("loss", 0.5, 3)
writer.close()
events = EventAccumulator("logs")
events.Reload()
import tensorboard.compat as compat
print([(e.step, e.value) for e in events.Scalars("loss")], "tensorflow" in sys.modules)
print(compat.tf.io.gfile.GFile.__module__)
"""


def test_pytorch_runs_log_to_tensorboard_as_without_tensorflow_installed(
        api: httpx.Client) -> None:
    # tensorboard's own stand-in file layer, as on a PyTorch-only machine: not
    # TensorFlow's, which would cost every run that logs ≈ 2.5 s of import.
    result = run(api, "pytorch", TENSORBOARD)
    assert result["status"] == "ok", result
    assert result["stdout"] == ("[(3, 0.5)] False\n"
                                "tensorboard.compat.tensorflow_stub.io.gfile\n")
    real = run(api, "tensorflow",
               "import tensorboard.compat as c\nprint(c.tf.io.gfile.GFile.__module__)")
    assert real["stdout"].startswith("tensorflow."), real  # TensorFlow's runs keep the real one


def test_error_names_the_snippet_line_and_trims_the_traceback(api: httpx.Client) -> None:
    code = "import torch\n\ndef f(t):\n    return t @ torch.ones(5, 5)\n\ny = f(torch.ones(2, 3))\n"
    result = run(api, "pytorch", code)
    assert result["status"] == "error"
    error = result["error"]
    assert error["type"] == "RuntimeError" and error["line"] == 4
    assert "line 6, in <module>" in error["traceback"] and "line 4, in f" in error["traceback"]
    assert "site-packages" not in error["traceback"] and "sandbox" not in error["traceback"]


def test_syntax_error_names_its_line(api: httpx.Client) -> None:
    result = run(api, "tensorflow", "x = 1\ny = (2 +\n")
    assert result["status"] == "error" and result["error"]["type"] == "SyntaxError"
    assert result["error"]["line"] == 2


def test_autograph_converts_python_control_flow_on_tensors(api: httpx.Client) -> None:
    code = ("import tensorflow as tf\n@tf.function\ndef relu(x):\n    if x > 0:\n        return x\n"
            "    return tf.zeros_like(x)\ny = relu(tf.constant(-2.0))\n")
    result = run(api, "tensorflow", code)
    assert result["status"] == "ok", result["error"]


def test_repeat_reports_cold_run_and_steady_state(api: httpx.Client) -> None:
    code = "import torch\na = torch.ones(64, 64)\n# %% timed\nb = (a @ a).sum()\n"
    timings = run(api, "pytorch", code, repeat=30)["timings"]
    assert timings["runs"] == 30 and timings["setup_ms"] is not None
    assert timings["p25_ms"] <= timings["median_ms"] <= timings["p75_ms"]
    assert timings["first_ms"] > 0 and timings["threads"]["torch_intraop"] >= 1


def test_repeat_shows_tf_function_tracing_apart(api: httpx.Client) -> None:
    code = ("import tensorflow as tf\n@tf.function\ndef f(x):\n    return tf.reduce_sum(x * x)\n"
            "x = tf.ones([8])\n# %% timed\ny = f(x)\n")
    timings = run(api, "tensorflow", code, repeat=10)["timings"]
    assert timings["trace_ms"] is not None and timings["trace_ms"] > 0
    assert timings["first_ms"] > timings["median_ms"]


def test_pair_that_agrees_matches(api: httpx.Client) -> None:
    body = {"tensorflow": "import tensorflow as tf\ny = tf.linspace(0., 1., 5) ** 2",
            "pytorch": "import torch\ny = torch.linspace(0, 1, 5) ** 2", "compare": ["y"]}
    pair = api.post("/api/pairs", json=body).json()
    assert pair["tensorflow"]["status"] == "ok" and pair["pytorch"]["status"] == "ok"
    assert pair["comparison"]["match"] is True
    y = pair["comparison"]["names"]["y"]
    assert y["match"] and y["shapes"] == [[5], [5]] and y["max_abs_diff"] < 1e-6


def test_pair_that_differs_reports_the_difference(api: httpx.Client) -> None:
    body = {"tensorflow": "import tensorflow as tf\ny = tf.ones([3]) * 2",
            "pytorch": "import torch\ny = torch.ones(3) * 2.5", "compare": ["y", "z"]}
    comparison = api.post("/api/pairs", json=body).json()["comparison"]
    assert comparison["match"] is False
    assert abs(comparison["names"]["y"]["max_abs_diff"] - 0.5) < 1e-6
    assert "not defined" in comparison["names"]["z"]["reason"]


def test_pair_expressions_compare_across_layouts(api: httpx.Client) -> None:
    body = {
        "tensorflow": "import numpy as np\nw = np.arange(6.).reshape(2, 3)",
        "pytorch": "import torch\nlinear = torch.nn.Linear(2, 3, bias=False)\n"
                   "with torch.no_grad():\n    linear.weight.copy_(torch.arange(6.).reshape(2, 3).T)",
        "compare": ["w"], "expressions": {"pytorch": {"w": "linear.weight.T"}},
    }
    comparison = api.post("/api/pairs", json=body).json()["comparison"]
    assert comparison["match"] is True, comparison


def test_health_reports_pool_versions_and_sandbox(api: httpx.Client) -> None:
    health = api.get("/api/health").json()
    assert health["status"] == "ok" and health["insecure"] is False
    assert health["sandbox"].startswith("bubblewrap")
    assert health["pool"]["slots"] == 2
    assert {"torch", "tensorflow", "numpy"} <= set(health["versions"])


def test_oversize_code_is_refused_with_a_message(api: httpx.Client) -> None:
    response = api.post("/api/runs", json={"framework": "pytorch", "code": "#" * (65 * 1024)})
    assert response.status_code == 422 and "64 KiB" in response.json()["detail"]


def test_huge_body_is_refused_before_parsing(api: httpx.Client) -> None:
    response = api.post("/api/runs", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                        headers={"content-type": "application/json"})
    assert response.status_code == 413 and "KiB" in response.json()["detail"]


def test_malformed_json_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/runs", content=b'{"framework": "pytorch", "code": ',
                        headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"]


def test_unknown_framework_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/runs", json={"framework": "jax", "code": "x = 1"})
    assert response.status_code == 422 and "framework" in response.json()["detail"]


def test_nul_bytes_are_refused(api: httpx.Client) -> None:
    response = api.post("/api/runs", content=json.dumps(
        {"framework": "pytorch", "code": "x = 1\u0000"}).encode(),
        headers={"content-type": "application/json"})
    assert response.status_code == 422 and "NUL" in response.json()["detail"]


def test_unknown_field_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/runs", json={"framework": "pytorch", "code": "x = 1", "sudo": True})
    assert response.status_code == 422


def test_graphs_are_drawn_inside_the_sandbox(api: httpx.Client) -> None:
    body = {
        "tensorflow": "import tensorflow as tf\nimport keras\n"
                      "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
                      "@tf.function\ndef step(x):\n    with tf.GradientTape() as tape:\n"
                      "        loss = tf.reduce_mean(model(x) ** 2)\n"
                      "    return tape.gradient(loss, model.trainable_variables)\n"
                      "grads = step(tf.ones([4, 3]))",
        "pytorch": "import torch\nfc = torch.nn.Linear(3, 2)\n"
                   "loss = fc(torch.ones(4, 3)).pow(2).mean()",
        "graph": True,
    }
    pair = api.post("/api/pairs", json=body).json()
    tf_graphs = {g["kind"]: g for g in pair["tensorflow"]["graphs"]}
    pt_graphs = {g["kind"]: g for g in pair["pytorch"]["graphs"]}
    assert "MatMul" in tf_graphs["tf_function"]["svg"] and "kernel" in tf_graphs["tf_function"]["svg"]
    assert "fc.weight" in pt_graphs["autograd"]["svg"] and "Addmm" in pt_graphs["autograd"]["svg"]
    assert all(g["svg"].startswith("<svg") and "<script" not in g["svg"]
               for g in [*tf_graphs.values(), *pt_graphs.values()])


def test_health_shows_the_reserve_and_the_pools_memory(api: httpx.Client) -> None:
    for _ in range(100):  # the first reading of PSS is taken in the background
        pool = api.get("/api/health").json()["pool"]
        if pool["pool_pss_mb"] is not None:
            break
        time.sleep(0.1)
    assert pool["pool_pss_mb"] > 100  # the template alone holds both frameworks
    assert set(pool["reserve"]) == {"pytorch", "tensorflow"}
    assert all(r["target"] >= 1 for r in pool["reserve"].values())
    assert pool["reserve_memory_mb"] >= 64
    assert pool["tensorflow_kernels"] == "precompiled in the template"  # onednn.py


DDP = """
import os, socket
import torch, torch.distributed as dist, torch.multiprocessing as mp

def work(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = torch.nn.Linear(4, 1)
    torch.nn.init.ones_(model.weight)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    ddp(torch.arange(8.).reshape(2, 4) + rank).sum().backward()
    if rank == 0:
        print(model.weight.grad.tolist())
    dist.destroy_process_group()

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
mp.start_processes(work, args=(port,), nprocs=2, start_method="fork")
"""


def test_torch_distributed_trains_over_two_processes_on_the_runs_own_loopback(
        api: httpx.Client) -> None:
    result = run(api, "pytorch", DDP, timeout_s=30)
    assert result["status"] == "ok", result
    # Each rank's column sums, averaged by DDP's all-reduce: (4+6)/2, (6+8)/2, ...
    assert result["stdout"] == "[[5.0, 7.0, 9.0, 11.0]]\n", result


def test_ddp_runs_end_every_time_with_the_compiler_imported_before_the_fork(
        api: httpx.Client) -> None:
    # torch 2.13 can deadlock as a DDP module on gloo is freed after backward
    # (the template's `keep_backward_context_off_cpu_threads` says how); with
    # torch._dynamo imported in the template about one run in two hung here.
    for i in range(12):
        result = run(api, "pytorch", DDP + f"# run {i}\n", timeout_s=10)
        assert result["status"] == "ok", (i, result["status"], result["stderr"][-500:])
        assert result["stdout"] == "[[5.0, 7.0, 9.0, 11.0]]\n", result


def test_a_snippet_that_configures_tensorflows_runtime_gets_one_not_yet_started(
        api: httpx.Client) -> None:
    code = ("import tensorflow as tf\ncpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(\n"
            "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])\n"
            "print(strategy.num_replicas_in_sync)\n")
    result = run(api, "tensorflow", code, timeout_s=30)
    assert result["status"] == "ok" and result["stdout"] == "2\n", result
    # The next plain run still finds a warm spare with one CPU device.
    plain = run(api, "tensorflow", "import tensorflow as tf\n"
                "print(len(tf.config.list_logical_devices('CPU')))")
    assert plain["stdout"] == "1\n", plain
