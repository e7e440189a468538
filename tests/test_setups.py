"""Prepared spares: which snippets ask for one, and runs that find one ready."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from app.packs.loader import load_pack
from app.settings import ROOT
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.messages import SpawnSpare
from sandbox.pool import Pool
from sandbox.protocol import Framework, RunRequest
from sandbox.setups import setup_for

SPLIT = ("import tensorflow as tf\n"
         "cpu = tf.config.list_physical_devices('CPU')[0]\n"
         "tf.config.set_logical_device_configuration(\n"
         "    cpu, [tf.config.LogicalDeviceConfiguration()] * {n})\n")


def test_the_bundled_lessons_ask_for_the_kinds_their_imports_and_settings_need() -> None:
    pack = load_pack(ROOT / "lessons" / "core")
    kinds = {(step.id, framework): setup_for(framework, step.snippet(framework).code)
             for lesson in pack.lessons for step in lesson.steps
             for framework in ("tensorflow", "pytorch")}
    asked = {key: kind for key, kind in kinds.items() if kind is not None}
    assert asked[("weights-without-pickle-safetensors", "tensorflow")] == "with-torch"
    assert asked[("weights-without-pickle-safetensors", "pytorch")] == "with-tensorflow"
    assert asked[("ddp-averages-the-gradients", "tensorflow")] == "cpus-2"
    assert asked[("processes-ranks-and-an-all-reduce", "tensorflow")] == "cpus-2"
    assert asked[("one-environment-variable-before-the-first-import", "pytorch")] \
        == "keras-on-torch"
    assert asked[("the-model-and-its-port", "tensorflow")] == "with-torch"  # the porter
    assert asked[("torch-compile-a-graph-when-you-ask-for-one", "pytorch")] == "compiler"
    assert asked[("torch-export-one-whole-graph-ahead-of-time", "pytorch")] == "compiler"
    assert asked[("onnx-from-both-frameworks", "pytorch")] == "onnx-export"
    # DDP's step imports Dynamo (its constructor needs it) but compiles nothing.
    assert kinds[("ddp-averages-the-gradients", "pytorch")] is None
    # A plain step asks for nothing: its spare is the reserve's.
    first = pack.lessons[0].steps[0]
    assert kinds[(first.id, "pytorch")] is None and kinds[(first.id, "tensorflow")] is None


@pytest.mark.parametrize("code", [
    SPLIT.format(n=2) + "tf.config.set_visible_devices([], 'GPU')\n",  # a second setting
    SPLIT.format(n=2) + SPLIT.format(n=3),  # two splits: the second decides
    "import tensorflow as tf\ncpu = tf.config.list_physical_devices('CPU')[0]\n"
    "if True:\n    tf.config.set_logical_device_configuration(\n"
    "        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n",  # not top-level
    SPLIT.format(n=2).replace("LogicalDeviceConfiguration()",
                              "LogicalDeviceConfiguration(memory_limit=64)"),
    SPLIT.format(n=1), SPLIT.format(n=64), SPLIT.format(n="k"),
    "import tensorflow as tf\ntf.config.set_logical_device_configuration(cpu, devices)\n",
    "import tensorflow as tf\ntf.config.set_logical_device_configuration(\n",  # cut short
    SPLIT.format(n=2) + "x = 1\n" * 4000,  # over MAX_PARSED_BYTES: not parsed on the loop
])
def test_a_runtime_setting_other_than_one_plain_cpu_split_keeps_a_fresh_spare(code: str) -> None:
    assert setup_for("tensorflow", code) is None


def test_the_cpu_split_is_read_however_the_list_is_written() -> None:
    assert setup_for("tensorflow", SPLIT.format(n=4)) == "cpus-4"
    written_out = ("import tensorflow as tf\nfrom tensorflow.config import "
                   "LogicalDeviceConfiguration as L\n"
                   "tf.config.set_logical_device_configuration(cpu, [L(), L(), L()])\n")
    assert setup_for("tensorflow", written_out) is None  # an alias is not read
    listed = ("import tensorflow as tf\ntf.config.set_logical_device_configuration(cpu, "
              "[tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])")
    assert setup_for("tensorflow", listed) == "cpus-2"


def test_keras_is_prepared_on_the_backend_the_snippet_names() -> None:
    on_torch = "import os\nos.environ['KERAS_BACKEND'] = 'torch'\nimport keras\n"
    assert setup_for("pytorch", on_torch) == "keras-on-torch"
    assert setup_for("pytorch", on_torch.replace("'torch'", "'jax'")) is None
    assert setup_for("pytorch", "import keras\n") == "with-tensorflow"
    assert setup_for("pytorch", "from tensorflow import keras\n") == "with-tensorflow"
    assert setup_for("pytorch", "import torch\n") is None
    assert setup_for("tensorflow", "from safetensors.torch import load_file\n") is None
    assert setup_for("tensorflow", "import torch.nn as nn\n") == "with-torch"


def test_a_spawn_order_names_only_known_kinds() -> None:
    order = {"id": 1, "slot": 0, "framework": "tensorflow", "name": "tensorflow-1-1",
             "limits": Limits()}
    assert SpawnSpare(**order, setup="cpus-2").setup == "cpus-2"
    for bad in ("cpus-9", "cpus-2; rm -rf /", "with-jax", ""):
        with pytest.raises(ValidationError):
            SpawnSpare(**order, setup=bad)


async def _prepared(pool: Pool, framework: str) -> None:
    for _ in range(300):
        stats = pool.stats().reserve[framework]
        if stats.prepared == stats.prepared_kinds > 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no prepared {framework} spare: {pool.stats().reserve}")


def test_a_second_run_of_the_same_kind_finds_its_spare_prepared() -> None:
    """Each run's output proves which spare it had: a prepared one had made the
    import (or started the runtime split as asked) before the snippet began."""
    seen = "import sys\nprint('tensorflow' in sys.modules)\n"
    with_tensorflow = seen + "import tensorflow as tf\nprint(int(tf.constant(2) * 3))\n"
    started = ("from tensorflow.python.eager import context\n"
               "print(context.context()._context_handle is not None)\n")  # before the split
    split = (SPLIT.format(n=2).replace("\ncpu =", "\n" + started + "cpu =")
             + "print(len(tf.config.list_logical_devices('CPU')))\n"
             "strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])\n"
             "print(strategy.num_replicas_in_sync)\n")

    async def scenario() -> None:
        pool = Pool(Limits(), size=2, spares_memory_mb=200)
        await pool.start()
        try:
            client = Client("learner", "127.0.0.1")
            first = await pool.run(RunRequest(framework="pytorch", code=with_tensorflow), client)
            assert first.stdout == "False\n6\n", first
            await _prepared(pool, "pytorch")
            second = await pool.run(
                RunRequest(framework="pytorch", code=with_tensorflow + "# edited\n"), client)
            assert second.stdout == "True\n6\n", second

            fresh = await pool.run(RunRequest(framework="tensorflow", code=split), client)
            assert fresh.stdout == "False\n2\n2\n", fresh  # a runtime started for it alone
            await _prepared(pool, "tensorflow")
            prepared = await pool.run(
                RunRequest(framework="tensorflow", code=split + "# edited\n"), client)
            assert prepared.stdout == "True\n2\n2\n", prepared  # split and started before
            # Another split is not this spare's: a runtime started for it alone.
            three = await pool.run(RunRequest(framework="tensorflow", code=SPLIT.format(n=3)
                                              + "print(len(tf.config.list_logical_devices()))"),
                                   client)
            assert three.stdout == "3\n", three
        finally:
            await pool.stop()

    asyncio.run(scenario())


def _in_a_spare_then_in_its_prepared_one(framework: Framework, code: str) -> tuple[str, str]:
    """The snippet's output in a spare of the reserve, then, edited so nothing is
    cached, in the prepared spare its first run asked for."""
    async def scenario() -> tuple[str, str]:
        pool = Pool(Limits(), size=2, spares_memory_mb=200)
        await pool.start()
        try:
            client = Client("learner", "127.0.0.1")
            first = await pool.run(RunRequest(framework=framework, code=code), client)
            await _prepared(pool, framework)
            second = await pool.run(RunRequest(framework=framework, code=code + "\n# edited"),
                                    client)
            return first.stdout, second.stdout
        finally:
            await pool.stop()

    return asyncio.run(scenario())


def test_a_compiler_spare_leaves_no_compiled_code_nor_counts_to_its_run() -> None:
    code = ("import torch\n"
            "from torch._subclasses.fake_tensor import FakeTensorMode\n"
            "print(len(FakeTensorMode.cache) > 0)\n"  # a first compile's caches: there or not
            "print(sum(torch._dynamo.utils.counters['stats'].values()))\n"
            "double = torch.compile(lambda x: x * 2, backend='eager')\n"
            "print(double(torch.ones(2)).tolist())\n")
    assert _in_a_spare_then_in_its_prepared_one("pytorch", code) == (
        "False\n0\n[2.0, 2.0]\n", "True\n0\n[2.0, 2.0]\n")


def test_an_onnx_export_spare_imported_onnxruntime_and_reset_dynamo() -> None:
    code = ("import sys\nprint('onnxruntime' in sys.modules)\n"
            "import torch\n"
            "print(sum(torch._dynamo.utils.counters['stats'].values()))\n"
            "program = torch.onnx.export(torch.nn.Linear(2, 1), (torch.ones(1, 2),),"
            " dynamo=True, verbose=False)\n"
            "print([node.op_type for node in program.model_proto.graph.node])\n")
    assert _in_a_spare_then_in_its_prepared_one("pytorch", code) == (
        "False\n0\n['Gemm']\n", "True\n0\n['Gemm']\n")


def test_prepared_spares_nobody_asks_for_any_more_are_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import spares

    async def scenario() -> None:
        pool = Pool(Limits(), size=2, spares_memory_mb=200)
        await pool.start()
        try:
            client = Client("learner", "127.0.0.1")
            await pool.run(RunRequest(framework="pytorch", code="import keras\n"), client)
            await _prepared(pool, "pytorch")
            monkeypatch.setattr(spares, "PREPARED_KEEP_S", 0.0)
            pool.spares.refill()
            stats = pool.stats().reserve["pytorch"]
            assert stats.prepared_kinds == stats.prepared == stats.preparing == 0
        finally:
            await pool.stop()

    asyncio.run(scenario())


def test_the_pool_holds_spares_of_only_the_kinds_asked_for_last() -> None:
    from sandbox.spares import MAX_PREPARED_KINDS

    async def scenario() -> None:
        pool = Pool(Limits(), size=2, spares_memory_mb=200)
        await pool.start()
        try:
            client = Client("learner", "127.0.0.1")
            for n in range(2, 3 + MAX_PREPARED_KINDS):  # one kind more than it keeps
                split = SPLIT.format(n=n) + "print(len(tf.config.list_logical_devices()))"
                result = await pool.run(RunRequest(framework="tensorflow", code=split), client)
                assert result.stdout == f"{n}\n", result
            await _prepared(pool, "tensorflow")
            stats = pool.stats().reserve["tensorflow"]
            assert stats.prepared_kinds == stats.prepared == MAX_PREPARED_KINDS, stats
        finally:
            await pool.stop()

    asyncio.run(scenario())
