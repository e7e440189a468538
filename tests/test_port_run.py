"""Ports through a real sandbox pool: the happy path, bad input, and hostile models and runs.

Each test ports through `Pool.port`, the executor call the site and the command
make; the models are saved here, in the test process, and loaded only in the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sandbox.executor import PORT_FILES
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.pool import Pool
from sandbox.port_files import check_safetensors
from sandbox.protocol import PortOrder, PortReport

keras = pytest.importorskip("keras")
CLIENT = Client("port-tests", "local", capped=False)
ARCHIVE_CAP_MB = 32


class Porter:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = Pool(Limits(port_wall_s=120.0, port_file_size_mb=ARCHIVE_CAP_MB), size=1,
                         spares_memory_mb=64)
        self.loop.run_until_complete(self.pool.start())

    def port(self, out: Path, model: Path | None = None, inputs: Path | None = None,
             **order: Any) -> PortReport:
        if model is not None:
            order.setdefault("filename", model.name)
        if inputs is not None:
            order.setdefault("inputs", inputs.suffix)
        out.mkdir(exist_ok=True)
        return self.loop.run_until_complete(
            self.pool.port(PortOrder(**order), model, out, CLIENT, inputs))

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def porter() -> Iterator[Porter]:
    p = Porter()
    yield p
    p.close()


def small_model(name: str = "small") -> Any:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(x), name=name)


def lambda_model(marker: Path) -> Any:
    """A Lambda whose code would leave `marker` behind, and print, if it ever ran."""
    def evil(t: Any) -> Any:
        marker.write_text("ran")
        print("LAMBDA RAN")
        return t * 2

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="before")(inputs)
    x = keras.layers.Lambda(evil, name="evil")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="after")(x), name="lam")


def test_a_small_model_is_proved_and_its_files_check_outside_the_site(
        porter: Porter, tmp_path: Path) -> None:
    saved = tmp_path / "small.keras"
    small_model().save(saved)
    out = tmp_path / "out"
    report = porter.port(out, saved)
    assert report.status == "proved" and report.error is None, report
    assert report.class_name == "Small" and report.layers and report.traps
    assert all(row.status == "pass" for row in report.layers)
    assert sorted(os.listdir(out)) == sorted(PORT_FILES)
    assert (out / "model.py").read_text() == report.module_source
    on_disk = PortReport.model_validate_json((out / "port_report.json").read_bytes())
    assert on_disk.status == "proved"
    keys = check_safetensors(out / "weights.safetensors")
    with zipfile.ZipFile(out / "port.zip") as bundle:
        assert sorted(bundle.namelist()) == sorted(f for f in PORT_FILES if f != "port.zip")
    # model.py's load() gives the module in eval mode, its state_dict keys the file's keys
    probe = ("import sys; sys.path.insert(0, '.'); import model; m = model.load(); "
             "print(m.training, sorted(m.state_dict()))")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=out, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"False {sorted(keys)}"
    check = subprocess.run([sys.executable, "check.py", str(saved)], cwd=out,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Small: proved" in check.stdout


def test_onnx_exports_of_both_models_are_compared(porter: Porter, tmp_path: Path) -> None:
    saved = tmp_path / "small.keras"
    small_model().save(saved)
    report = porter.port(tmp_path / "out", saved, onnx=True)
    assert report.onnx is not None and report.onnx.status == "pass", report.onnx
    assert report.onnx.max_abs_err is not None and report.onnx.max_abs_err < 1e-4


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambdas_code_in_a_model_file_never_runs(porter: Porter, tmp_path: Path,
                                                   suffix: str) -> None:
    from sandbox.porter.loading import load_model_file

    marker = tmp_path / "marker"
    saved = tmp_path / f"lam{suffix}"
    lambda_model(marker).save(saved)
    marker.unlink()  # building the model ran it once, here, on purpose
    with saved.open("rb") as f:  # loaded in this process: nothing runs, nothing is written
        loaded = load_model_file(f, suffix).model
    assert not marker.exists()
    assert type(loaded.get_layer("evil")).__name__ == "Lambda"
    report = porter.port(tmp_path / "out", saved)
    assert report.status == "partial", report
    assert [(s.name, s.class_name) for s in report.unsupported] == [("evil", "Lambda")]
    rows = {row.name: row.status for row in report.layers}
    assert rows == {"before": "pass", "evil": "stub", "after": "not run"}
    assert "LAMBDA RAN" not in report.model_dump_json()
    assert "KerasStub(" in report.module_source and "self.evil = " in report.module_source


def test_a_custom_layer_keras_does_not_know_becomes_a_stub(porter: Porter,
                                                           tmp_path: Path) -> None:
    @keras.saving.register_keras_serializable(package="tests_port_run")
    class Scale(keras.layers.Layer):  # type: ignore[misc,name-defined]
        def build(self, shape: Any) -> None:
            self.w = self.add_weight(shape=(shape[-1],), name="w")

        def call(self, t: Any) -> Any:
            return t * self.w

    inputs = keras.Input((4,))
    x = Scale(name="scale")(keras.layers.Dense(3, name="before")(inputs))
    saved = tmp_path / "custom.h5"
    keras.Model(inputs, keras.layers.Dense(2, name="after")(x), name="custom").save(saved)
    report = porter.port(tmp_path / "out", saved)
    assert report.status == "partial", report
    assert [(s.name, s.class_name) for s in report.unsupported] == [("scale", "Scale")]


@pytest.mark.parametrize(("content", "kind"), [
    (b"not a model at all", "NotAModel"),
    (None, "NotAModel"),  # a real .keras file cut in half
])
def test_a_file_that_is_not_a_whole_model_is_a_clear_error(porter: Porter, tmp_path: Path,
                                                          content: bytes | None,
                                                          kind: str) -> None:
    saved = tmp_path / "m.keras"
    if content is None:
        small_model().save(saved)
        content = saved.read_bytes()[: saved.stat().st_size // 2]
    saved.write_bytes(content)
    out = tmp_path / "out"
    report = porter.port(out, saved)
    assert report.status == "failed" and report.error is not None
    assert report.error.type == kind and report.error.message
    assert os.listdir(out) == []


@pytest.mark.parametrize(("code", "kind", "line"), [
    ("import keras\nmodel = keras.Sequential([keras.layers.Dense(3)])\n", "NoInputs", None),
    ("x = 1\nraise ValueError('no model today')\n", "ValueError", 2),
    ("x = 1\n", "NoModel", None),
])
def test_a_snippet_without_a_portable_model_is_a_clear_error(
        porter: Porter, tmp_path: Path, code: str, kind: str, line: int | None) -> None:
    out = tmp_path / "out"
    report = porter.port(out, code=code)
    assert report.status == "failed" and report.error is not None, report
    assert (report.error.type, report.error.line) == (kind, line)
    assert os.listdir(out) == []


def test_a_snippets_model_is_the_last_one_in_scope(porter: Porter, tmp_path: Path) -> None:
    code = ("import keras\n"
            "a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name='first')\n"
            "b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)], name='second')\n")
    report = porter.port(tmp_path / "out", code=code)
    assert report.status == "proved" and report.class_name == "Second", report


def test_a_port_snippet_cannot_read_the_servers_files_nor_the_network(
        porter: Porter, tmp_path: Path) -> None:
    secret = Path(__file__).resolve()
    code = (f"import socket\nopen({str(secret)!r}).read()\n")
    report = porter.port(tmp_path / "a", code=code)
    assert report.error is not None and report.error.type in (
        "FileNotFoundError", "PermissionError"), report
    code = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)\n"
    report = porter.port(tmp_path / "b", code=code)
    assert report.error is not None and report.error.type in ("OSError", "TimeoutError",
                                                              "ConnectionRefusedError"), report


BUILD = ("import keras\n"
         "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name='m')\n")
# The snippet runs in the same process as the job that writes the archive: it can
# replace the writer, as any code in the run could, and hand the trusted side its own.
FORGE = BUILD + """import zipfile, os, sandbox.porter.job as job
def forged(fd, ported, report):
    with os.fdopen(os.dup(fd), "wb") as raw, zipfile.ZipFile(raw, "w") as z:
{body}
job.write_archive = forged
"""
GOOD_REPORT = "report.model_dump_json()"


@pytest.mark.parametrize(("body", "why"), [
    ("        z.writestr('../../escaped.py', 'x')\n"
     f"        z.writestr('port_report.json', {GOOD_REPORT})", "unexpected member"),
    ("        z.writestr('/etc/model.py', 'x')", "unexpected member"),
    ("        z.writestr('port_report.json', '{\"status\": \"proved\", \"class_name\": '"
     " + repr('x' * 1000) + '}')", "not a PortReport"),
    ("        z.writestr('port_report.json', 'not json')", "not a PortReport"),
    ("        z.writestr('model.py', 'import os; os.system(\"x\")')\n"
     "        z.writestr('weights.safetensors', b'')\n"
     f"        z.writestr('port_report.json', {GOOD_REPORT})", "not the source"),
    ("        z.writestr('model.py', ported.source)\n"
     "        z.writestr('weights.safetensors', (2**40).to_bytes(8, 'little') + b'{}')\n"
     f"        z.writestr('port_report.json', {GOOD_REPORT})", "past the file"),
    ("        import json\n"
     "        head = json.dumps({'w': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},"
     " 'v': {'dtype': 'F32', 'shape': [4], 'data_offsets': [8, 24]}}).encode()\n"
     "        z.writestr('model.py', ported.source)\n"
     "        z.writestr('weights.safetensors', len(head).to_bytes(8, 'little') + head"
     " + bytes(24))\n"
     f"        z.writestr('port_report.json', {GOOD_REPORT})", "overlap"),
    ("        import json\n"
     "        head = json.dumps({'w\"); __import__(\"os\")': {'dtype': 'F32', 'shape': [1],"
     " 'data_offsets': [0, 4]}}).encode()\n"
     "        z.writestr('model.py', ported.source)\n"
     "        z.writestr('weights.safetensors', len(head).to_bytes(8, 'little') + head"
     " + bytes(4))\n"
     f"        z.writestr('port_report.json', {GOOD_REPORT})", "not a state_dict key"),
    ("        z.writestr('model.py', ported.source)\n"
     "        z.writestr('model.py', ported.source)", "unexpected member"),
])
def test_a_forged_archive_is_refused_and_leaves_no_file(porter: Porter, tmp_path: Path,
                                                       body: str, why: str) -> None:
    out = tmp_path / "out"
    report = porter.port(out, code=FORGE.format(body=body))
    assert report.status == "failed" and report.error is not None, report
    assert report.error.type == "ArchiveRefused" and why in report.error.message, report.error
    assert os.listdir(out) == []
    assert not (tmp_path / "escaped.py").exists()


def test_an_archive_past_the_file_size_limit_ends_the_port(porter: Porter,
                                                           tmp_path: Path) -> None:
    body = ("        z.writestr('weights.safetensors', os.urandom("
            f"{(ARCHIVE_CAP_MB + 8) * 2**20}))")
    out = tmp_path / "out"
    report = porter.port(out, code=FORGE.format(body=body))
    assert report.status == "failed" and report.error is not None, report
    assert os.listdir(out) == []


def test_a_zip_bomb_is_read_no_further_than_its_cap(tmp_path: Path) -> None:
    from sandbox.port_files import ArchiveRefused, accept_archive

    out = tmp_path / "out"
    out.mkdir()
    archive = out / ".archive"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("port_report.json", b" " * (64 * 2**20))  # 64 MiB of spaces: ~64 KiB
    with pytest.raises(ArchiveRefused, match=r"port_report\.json"):
        accept_archive(archive, out, 2**20)
    assert os.listdir(out) == []


def test_a_hostile_layer_name_cannot_inject_code_into_model_py(porter: Porter,
                                                               tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    names = [f'a"""\nopen({str(marker)!r}, "w")\n"""',
             f"b'); open({str(marker)!r}, 'w') #",
             f"__import__('os').system('touch {marker}')"]
    inputs = keras.Input((4,), name="x")
    x = inputs
    for i, name in enumerate(names):
        x = keras.layers.Dense(4, name=name.replace("/", "_") + str(i))(x)
    saved = tmp_path / "names.keras"
    keras.Model(inputs, x, name="__import__('os')").save(saved)
    out = tmp_path / "out"
    report = porter.port(out, saved)
    assert report.status == "proved", report
    run = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); "
                          "import model; model.load()"], cwd=out, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not marker.exists()
    assert json.loads((out / "port_report.json").read_text())["layers"][0]["name"].startswith(
        'a"""')


def test_a_ports_files_are_not_left_to_the_runs_after_it(porter: Porter, tmp_path: Path) -> None:
    from sandbox.protocol import RunRequest

    saved = tmp_path / "small.keras"
    small_model().save(saved)
    assert porter.port(tmp_path / "out", saved).status == "proved"
    probe = RunRequest(framework="tensorflow",
                       code="import os\nprint(sorted(int(f) for f in os.listdir('/proc/self/fd')))")
    result = porter.loop.run_until_complete(porter.pool.run(probe, CLIENT))
    assert result.status == "ok", result
    # stdio, the order and result pipes, and the descriptor listdir itself opened
    assert json.loads(result.stdout) == [0, 1, 2, 3, 4, 5], result.stdout


def test_remote_workers_say_ports_need_the_local_sandbox(tmp_path: Path) -> None:
    from sandbox.executor import PortsUnavailable
    from sandbox.remote.client import RemoteExecutor
    from sandbox.remote.signing import Signer

    executor = RemoteExecutor("redis://127.0.0.1:1/0", Limits(), Signer("s" * 32))
    order = PortOrder(code="import keras")
    with pytest.raises(PortsUnavailable, match="local sandbox"):
        asyncio.run(executor.port(order, None, tmp_path, CLIENT))
    assert os.listdir(tmp_path) == []


def test_a_port_past_its_time_limit_is_a_clear_error_and_leaves_no_file(
        porter: Porter, tmp_path: Path) -> None:
    import dataclasses

    limits = porter.pool.limits
    porter.pool.limits = dataclasses.replace(limits, port_wall_s=4.0)  # this port's only
    try:
        out = tmp_path / "out"
        report = porter.port(out, code=BUILD + "while True:\n    pass\n")
    finally:
        porter.pool.limits = limits
    assert report.status == "failed" and report.error is not None, report
    assert "ran out of time" in report.error.message
    assert os.listdir(out) == []


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_activation_in_a_model_file_never_runs(tmp_path: Path, suffix: str) -> None:
    from sandbox.porter.loading import load_model_file

    marker = tmp_path / "marker"

    def evil(t: Any) -> Any:
        marker.write_text("ran")
        return t

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation=lambda t: evil(t), name="dense")(inputs)
    saved = tmp_path / f"act{suffix}"
    with pytest.warns(UserWarning, match="lambda"):
        keras.Model(inputs, outputs, name="act").save(saved)
    marker.unlink(missing_ok=True)
    with saved.open("rb") as f:
        loaded = load_model_file(f, suffix).model
    loaded(np.ones((1, 4), dtype=np.float32))  # called, too: the stand-in holds no code
    assert not marker.exists()
    stand_in = loaded.get_layer("dense")
    assert type(stand_in).__name__ == "Dense" and not isinstance(stand_in, keras.layers.Dense)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_layers_keras_refuses_become_stubs_of_the_right_shape(porter: Porter, tmp_path: Path,
                                                              suffix: str) -> None:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, name="first")(inputs)
    x = keras.layers.Lambda(lambda t: t[:, :2], name="cut")(x)  # changes the shape
    x = keras.layers.Dense(3, name="after_cut")(x)
    with pytest.warns(UserWarning, match="lambda"):  # saving a lambda activation says so
        x = keras.layers.Dense(2, activation=lambda t: t * 3, name="odd_activation")(x)
        model = keras.Model(inputs, keras.layers.Dense(2, name="last")(x), name="refused")
        model.save(tmp_path / f"refused{suffix}")
    report = porter.port(tmp_path / "out", tmp_path / f"refused{suffix}")
    assert report.status == "partial", report
    assert [(s.name, s.class_name) for s in report.unsupported] == [
        ("cut", "Lambda"), ("odd_activation", "Dense")]
    rows = {row.name: row.status for row in report.layers}
    assert rows == {"first": "pass", "cut": "stub", "after_cut": "not run",
                    "odd_activation": "stub", "last": "not run"}
    assert not report.notes or "weights not loaded" not in " ".join(report.notes)
