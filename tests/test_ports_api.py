"""POST /api/ports on a real server: each model ported and proved in the real sandbox,
private to its token; bad input refused with a 4xx before anything is kept."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from markupsafe import escape

from sandbox.porter.traps import LESSONS
from tests.keras_files import save_keras_model

SNIPPET = """
import keras
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"),
                          keras.layers.Dense(2)], name="tiny_mlp")
"""


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_keras_model(tmp_path_factory.mktemp("models") / "tiny_cnn.keras")


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_keras_model(tmp_path_factory.mktemp("models") / "tiny_cnn.h5")


@pytest.fixture
def ports_root(data_dir: Path) -> Path:
    return data_dir / "ports"


def kept(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(api: httpx.Client, name: str, data: bytes, token: str | None = None,
           **fields: str) -> httpx.Response:
    return api.post("/api/ports", files={"file": (name, data, "application/octet-stream")},
                    data=fields, headers=bearer(token) if token else {})


def finished(api: httpx.Client, url: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        report = api.get(url, headers=bearer(token)).json()
        if report["status"] != "porting":
            return report  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError("the port did not end")


def test_an_uploaded_keras_model_is_ported_proved_and_downloadable(
        api: httpx.Client, keras_file: Path, ports_root: Path) -> None:
    sent = upload(api, "tiny_cnn.keras", keras_file.read_bytes())
    assert sent.status_code == 202, sent.text
    accepted = sent.json()
    assert accepted["status"] == "porting" and len(accepted["token"]) >= 22
    assert accepted["report_url"] == f"/api/ports/{accepted['id']}"
    report = finished(api, accepted["report_url"], accepted["token"])
    assert report["status"] == "proved", report.get("error") or report["layers"]
    assert "class TinyCnn(nn.Module)" in report["module_source"]
    assert "Conv2D" in report["keras_summary"]
    rows = {row["name"]: row for row in report["layers"]}
    assert {"conv", "bn", "flatten", "head"} <= set(rows)
    assert all(row["status"] == "pass" for row in report["layers"])
    assert rows["head"]["attribute"] == "head" and rows["head"]["shape"][-1] == 5
    assert report["max_abs_err"] is not None and report["max_abs_err"] <= 1e-5 + 1e-4
    taught = [t for t in report["traps"] if t["key"] == "flatten-channels-last"]
    assert taught and taught[0]["layer"] == "flatten"
    lesson, section = LESSONS["flatten-channels-last"]
    page, _, step = taught[0]["lesson_url"].partition("#")
    assert page == f"/lessons/{lesson}" and step.startswith("step-")
    lesson_page = api.get(page).text  # the link lands on the step teaching it
    assert f'<section class="step" id="{step}"' in lesson_page
    assert str(escape(section)) in lesson_page

    files = report["files"]
    assert set(files) == {"model.py", "weights.safetensors", "port_report.json", "check.py",
                          "port.zip"}
    token = bearer(accepted["token"])
    source = api.get(files["model.py"], headers=token)
    assert source.headers["content-type"] == "text/x-python; charset=utf-8"
    assert source.headers["content-disposition"] == 'attachment; filename="model.py"'
    assert source.text == report["module_source"]
    weights = api.get(files["weights.safetensors"], headers=token)
    assert weights.headers["content-type"] == "application/octet-stream"
    header = json.loads(weights.content[8:8 + int.from_bytes(weights.content[:8], "little")])
    assert "head.weight" in header
    saved = api.get(files["port_report.json"], headers=token)
    assert saved.headers["content-type"] == "application/json"
    assert saved.json()["status"] == "proved"
    zipped = api.get(files["port.zip"], headers=token)
    assert zipped.headers["content-disposition"] == 'attachment; filename="TinyCnn_port.zip"'
    names = set(zipfile.ZipFile(io.BytesIO(zipped.content)).namelist())
    assert {"model.py", "weights.safetensors", "port_report.json", "check.py"} <= {
        n.rsplit("/", 1)[-1] for n in names}
    folder = ports_root / accepted["id"]
    assert not list(folder.glob("model.*"))  # the upload goes once the port ends


def test_an_h5_file_and_a_channels_first_layout(api: httpx.Client, h5_file: Path) -> None:
    sent = upload(api, "tiny_cnn.h5", h5_file.read_bytes(), layout="nchw", atol="1e-4")
    assert sent.status_code == 202, sent.text
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "proved", report.get("error") or report["layers"]
    assert report["layout"] == "nchw" and report["atol"] == 1e-4


def test_a_snippet_is_ported_under_the_token_sent(api: httpx.Client) -> None:
    token = "my-own-token-" + "x" * 20
    sent = api.post("/api/ports", json={"code": SNIPPET}, headers=bearer(token))
    assert sent.status_code == 202, sent.text
    assert sent.json()["token"] == token
    report = finished(api, sent.json()["report_url"], token)
    assert report["status"] == "proved", report.get("error")
    assert report["source"] == "" and "class TinyMlp" in report["module_source"]


def test_a_snippet_that_raises_fails_with_its_line_and_keeps_no_file(
        api: httpx.Client, ports_root: Path) -> None:
    before = kept(ports_root)
    sent = api.post("/api/ports", json={"code": "import keras\n\nraise ValueError('nope')\n"})
    assert sent.status_code == 202
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "failed" and report["files"] == {}
    assert report["error"]["type"] == "ValueError" and "nope" in report["error"]["message"]
    assert report["error"]["line"] == 3
    assert kept(ports_root) == before


def test_a_file_that_is_no_model_fails_in_the_sandbox_and_keeps_no_file(
        api: httpx.Client, ports_root: Path) -> None:
    """A zip is a .keras file to the web process; only the sandbox finds it holds no model."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    before = kept(ports_root)
    sent = upload(api, "notes.keras", buffer.getvalue())
    assert sent.status_code == 202
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "failed" and report["error"]["message"]
    assert kept(ports_root) == before


def test_a_port_is_private_to_its_token(api: httpx.Client) -> None:
    sent = api.post("/api/ports", json={"code": SNIPPET})
    url, token = sent.json()["report_url"], sent.json()["token"]
    report = finished(api, url, token)
    assert report["status"] == "proved"
    for headers in ({}, bearer("someone-else-" + "y" * 20)):
        assert api.get(url, headers=headers).status_code == 404
        assert api.get(f"{url}/port.zip", headers=headers).status_code == 404
    assert api.get(f"{url}/..%2F..%2Fsidebyside.sqlite3", headers=bearer(token)).status_code == 404
    assert api.get(f"{url}/server-only.txt", headers=bearer(token)).status_code == 404


@pytest.mark.parametrize(("name", "data", "status", "says"), [
    ("model.keras", b"", 422, "empty"),
    ("model.keras", b"definitely not a zip", 422, "not a whole .keras file"),
    ("model.h5", b"PK\x03\x04 a zip named .h5", 422, "no HDF5 signature"),
    ("model.pt", b"\x80\x02torch", 415, ".keras"),
    ("model", b"x", 415, ".keras"),
])
def test_a_file_that_is_not_a_model_is_refused_and_leaves_nothing(
        api: httpx.Client, ports_root: Path, name: str, data: bytes, status: int,
        says: str) -> None:
    before = kept(ports_root)
    sent = upload(api, name, data)
    assert sent.status_code == status and says in sent.json()["detail"]
    assert kept(ports_root) == before


def test_a_truncated_keras_file_is_refused(api: httpx.Client, keras_file: Path,
                                          ports_root: Path) -> None:
    before = kept(ports_root)
    data = keras_file.read_bytes()
    sent = upload(api, "tiny_cnn.keras", data[: len(data) // 2])
    assert sent.status_code == 422 and "cut short" in sent.json()["detail"]
    assert kept(ports_root) == before


@pytest.mark.parametrize(("request_kw", "says"), [
    ({"files": {"layout": (None, "nhwc")}}, "Send a model file"),
    ({"files": {"file": ("a.keras", b"PK"), "inputs": (None, "1,2,3")}}, "`inputs` is a file"),
    ({"data": {"layout": "nhwc"}}, "multipart"),
    ({"json": {"filename": "x.keras"}}, "multipart"),
    ({"json": {"code": "model = 1", "filename": "x.keras"}}, "exactly one"),
    ({"json": {"code": "model = 1", "layout": "sideways"}}, "layout"),
    ({"json": {"code": "model = 1", "atol": -1}}, "atol"),
    ({"json": {"code": "x = 1\n" * 20000}}, "64 KiB"),
    ({"json": {"code": "model = 1", "extra": 1}}, "extra"),
    ({"json": {}}, "exactly one"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, "Invalid JSON"),
    ({"content": b"code=1", "headers": {"content-type": "text/plain"}}, "multipart"),
])
def test_a_malformed_request_is_refused_with_a_message(
        api: httpx.Client, ports_root: Path, request_kw: dict[str, Any], says: str) -> None:
    before = kept(ports_root)
    sent = api.post("/api/ports", **request_kw)
    assert 400 <= sent.status_code < 500 and says in sent.json()["detail"], sent.text
    assert kept(ports_root) == before


def test_a_lambda_layer_makes_a_partial_port_with_its_stub(api: httpx.Client) -> None:
    code = """
import keras
inputs = keras.Input((4,))
hidden = keras.layers.Dense(3, name="dense")(inputs)
doubled = keras.layers.Lambda(lambda t: t * 2.0, name="doubled")(hidden)
model = keras.Model(inputs, keras.layers.Dense(2, name="head")(doubled))
"""
    sent = api.post("/api/ports", json={"code": code})
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "partial", report.get("error")
    assert [(s["name"], s["class_name"]) for s in report["unsupported"]] == [
        ("doubled", "Lambda")]
    rows = {row["name"]: row["status"] for row in report["layers"]}
    assert rows["dense"] == "pass" and rows["doubled"] == "stub"
    assert "NotImplementedError" in report["module_source"]
    assert "port.zip" in report["files"]  # a partial port is kept: the stubs are to write


def test_onnx_is_compared_when_asked(api: httpx.Client) -> None:
    sent = api.post("/api/ports", json={"code": SNIPPET, "onnx": True})
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "proved", report.get("error")
    assert report["onnx"] is not None and report["onnx"]["status"] == "pass", report["onnx"]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def upload_with_inputs(api: httpx.Client, model: Path, name: str, data: bytes,
                       **fields: str) -> httpx.Response:
    return api.post("/api/ports", data=fields, files={
        "file": (model.name, model.read_bytes(), "application/octet-stream"),
        "inputs": (name, data, "application/octet-stream")})


def test_the_users_inputs_are_proved_beside_the_seeded_ones(
        api: httpx.Client, keras_file: Path, ports_root: Path) -> None:
    inputs = np.random.default_rng(3).standard_normal((3, 8, 8, 3)).astype(np.float32)
    sent = upload_with_inputs(api, keras_file, "mine.npy", npy_bytes(inputs))
    assert sent.status_code == 202, sent.text
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "proved", report.get("error") or report["layers"]
    assert report["batches"] == ["seeded random inputs (seed 0, 2 samples)",
                                 "your inputs (3 samples)"]
    folder = ports_root / sent.json()["id"]
    assert not list(folder.glob("inputs.*"))  # gone with the model once the port ends


def test_inputs_that_dont_fit_the_model_fail_the_port_with_what_it_expects(
        api: httpx.Client, keras_file: Path, ports_root: Path) -> None:
    before = kept(ports_root)
    buffer = io.BytesIO()
    np.savez(buffer, np.zeros((2, 8, 8, 3)), np.zeros((2, 4)))
    sent = upload_with_inputs(api, keras_file, "two.npz", buffer.getvalue())
    assert sent.status_code == 202, sent.text
    report = finished(api, sent.json()["report_url"], sent.json()["token"])
    assert report["status"] == "failed" and report["files"] == {}
    assert report["error"]["type"] == "InputsRefused"
    assert "the .npz holds 2 arrays (arr_0, arr_1); the model has 1 input: name it" in \
        report["error"]["message"]
    assert kept(ports_root) == before


@pytest.mark.parametrize(("name", "data", "status", "says"), [
    ("inputs.csv", b"1,2,3\n", 415, "a .npy file"),
    ("inputs.npy", b"", 422, "empty"),
    ("inputs.npy", b"1,2,3\n", 422, "numpy's magic"),
    ("inputs.npz", b"\x93NUMPY\x01\x00", 422, "not a zip or was cut short"),
])
def test_inputs_that_are_not_numpy_files_are_refused_and_leave_nothing(
        api: httpx.Client, keras_file: Path, ports_root: Path, name: str, data: bytes,
        status: int, says: str) -> None:
    before = kept(ports_root)
    sent = upload_with_inputs(api, keras_file, name, data)
    assert sent.status_code == status and says in sent.json()["detail"], sent.text
    assert kept(ports_root) == before


def test_inputs_are_sent_as_a_file_not_named_in_json(api: httpx.Client) -> None:
    sent = api.post("/api/ports", json={"code": SNIPPET, "inputs": ".npy"})
    assert sent.status_code == 422 and "multipart" in sent.json()["detail"]
