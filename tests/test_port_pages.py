"""The porter's pages and storage around an executor double: rendering, escaping,
privacy, refusals, what is kept. The port itself through the real sandbox is in
tests/test_ports_api.py and tests/browser/test_port_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import ROOT, Settings
from sandbox.executor import PORT_FILES, PortsUnavailable
from sandbox.fairqueue import Client
from sandbox.protocol import PortOrder, PortReport

pytestmark = pytest.mark.anyio
HOSTILE = '<img src=x onerror=alert(1)>"; import os #'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class PortDouble:
    """A double of the executor, for pages only: `port` writes the files a port with a
    module leaves and answers the report the test set. It runs nothing."""

    def __init__(self) -> None:
        self.report = PortReport(status="proved", class_name="Tiny",
                                 module_source="class Tiny(nn.Module):\n    pass\n")
        self.unavailable = False
        self.release = asyncio.Event()
        self.release.set()
        self.orders: list[tuple[PortOrder, Path | None, Client]] = []
        self.inputs: list[bytes | None] = []  # the inputs file each port was handed

    def stats(self) -> Any:
        return SimpleNamespace(insecure=False)

    async def port(self, order: PortOrder, model: Path | None, out_dir: Path,
                   client: Client, inputs: Path | None = None) -> PortReport:
        if self.unavailable:
            raise PortsUnavailable("this server sends its runs to remote workers")
        self.orders.append((order, model, client))
        self.inputs.append(inputs.read_bytes() if inputs is not None else None)
        await self.release.wait()
        if self.report.status != "failed" or self.report.module_source:
            for name in PORT_FILES:
                (out_dir / name).write_bytes(b"PK\x05\x06" if name == "port.zip" else b"x")
        return self.report


def keras_bytes() -> bytes:
    """Looks like a .keras file to the web process (a whole zip); no model inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
    return buffer.getvalue()


def leftovers(root: Path) -> list[Path]:
    """Every file and folder under the ports' root (none before the first port)."""
    return sorted(root.rglob("*")) if root.exists() else []


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PortDouble, Path]]:
    double = PortDouble()
    settings = Settings(data_dir=tmp_path, packs_dir=ROOT / "lessons", port_upload_mb=1,
                        port_inputs_mb=1)
    app = create_app(settings, executor=double)  # type: ignore[arg-type]
    async with app.state.sidebyside.running():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, double, tmp_path / "ports"


async def form_post(client: httpx.AsyncClient, **kw: Any) -> httpx.Response:
    page = await client.get("/port")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    data = {"csrf_token": csrf[1], **kw.pop("data", {})}
    return await client.post("/port", data=data, **kw)


async def test_the_header_links_the_porter_and_its_form_states_the_defaults(site: Any) -> None:
    client, _, _ = site
    page = (await client.get("/")).text
    assert '<a href="/port">Port a model</a>' in page
    form = (await client.get("/port")).text
    assert 'value="1e-05"' in form and 'value="0.0001"' in form
    assert "Default: atol 1e-5 with rtol 1e-4" in form
    assert 'name="onnx"' in form and 'value="nchw"' in form and 'accept=".keras,.h5"' in form


async def test_a_port_from_the_form_is_the_browsers_own(site: Any) -> None:
    client, double, root = site
    sent = await form_post(client, files={"file": ("net.keras", keras_bytes())},
                           data={"layout": "nchw", "atol": "1e-4", "onnx": "on"})
    assert sent.status_code == 303
    url = sent.headers["location"]
    assert re.fullmatch(r"/ports/[\w-]+", url) and "sbs_porter" in sent.headers["set-cookie"]
    order, model, _ = double.orders[-1]
    assert (order.layout, order.atol, order.onnx, order.filename) == ("nchw", 1e-4, True,
                                                                    "net.keras")
    assert model is not None and model.name == "model.keras"
    page = await client.get(url)
    assert page.status_code == 200 and "Proved:" in page.text
    port_id = url.rsplit("/", 1)[1]
    assert sorted(p.name for p in (root / port_id / "out").iterdir()) == sorted(PORT_FILES)
    assert not (root / port_id / "model.keras").exists()  # the upload goes once ported
    zipped = await client.get(f"/api/ports/{port_id}/port.zip")
    assert zipped.headers["content-type"] == "application/zip"
    assert zipped.headers["content-disposition"] == 'attachment; filename="Tiny_port.zip"'
    client.cookies.clear()  # another browser
    assert (await client.get(url)).status_code == 404
    assert (await client.get(f"/api/ports/{port_id}/port.zip")).status_code == 404


async def test_a_refused_form_keeps_what_was_typed_and_leaves_no_file(site: Any) -> None:
    client, double, root = site
    snippet = "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])"
    sent = await form_post(client, files={"file": ("net.keras", b"not a zip")},
                           data={"code": snippet, "rtol": "0.5"})
    assert sent.status_code == 422 and "not both" in sent.text
    assert "keras.Sequential" in sent.text and 'value="0.5"' in sent.text
    sent = await form_post(client, files={"file": ("net.keras", b"not a zip")})
    assert sent.status_code == 422 and "not a whole .keras file" in sent.text
    sent = await form_post(client, data={"code": snippet, "atol": "-1"})
    assert sent.status_code == 422 and "atol" in sent.text
    assert double.orders == [] and leftovers(root) == []


async def test_a_hostile_layer_name_renders_inert(site: Any) -> None:
    client, double, _ = site
    double.report = PortReport.model_validate({
        "status": "partial", "class_name": "Tiny", "module_source": f"# {HOSTILE}\n",
        "keras_summary": HOSTILE,
        "layers": [{"name": HOSTILE, "class_name": "Dense", "attribute": "dense",
                    "shape": [1, 2], "max_abs_err": 0.0, "max_rel_err": 0.0,
                    "status": "pass"}],
        "traps": [{"layer": HOSTILE, "key": "kernel-layout", "text": HOSTILE,
                   "lesson": "porting", "section": "Dense → Linear: transpose the kernel"}],
        "unsupported": [{"name": HOSTILE, "class_name": "Lambda", "config": HOSTILE}]})
    sent = await form_post(client, data={"code": "model = None"})
    page = (await client.get(sent.headers["location"])).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Partial:" in page
    link = '<a class="trap-link" href="/lessons/porting#step-dense-linear-transpose-the-kernel">'
    assert link in page


async def test_a_waiting_port_is_pushed_when_it_ends(site: Any) -> None:
    client, double, _ = site
    double.release.clear()
    sent = await form_post(client, data={"code": "model = None"})
    url = sent.headers["location"]
    page = (await client.get(url)).text
    assert f'data-wait="{url}"' in page and "Porting" in page
    again = await form_post(client, data={"code": "model = None"})
    assert again.status_code == 429 and "You have a port running" in again.text

    async def release_soon() -> None:
        await asyncio.sleep(0.3)
        double.release.set()

    releasing = asyncio.create_task(release_soon())
    async with client.stream("GET", f"{url}/events") as stream:
        body = "".join([chunk async for chunk in stream.aiter_text()])
    await releasing
    assert "event: done" in body and "Proved:" in body and "data-wait" not in body


async def test_a_failed_port_keeps_its_report_and_no_file(site: Any) -> None:
    client, double, root = site
    double.report = PortReport.failed("ValueError", "the model has no inputs")
    sent = await form_post(client, files={"file": ("net.keras", keras_bytes())})
    url = sent.headers["location"]
    page = (await client.get(url)).text
    assert "Failed:" in page and "the model has no inputs" in page
    assert leftovers(root) == []
    body = (await client.get("/api" + url)).json()
    assert body["status"] == "failed" and body["files"] == {}
    assert body["error"]["message"] == "the model has no inputs"


async def test_a_server_that_cannot_port_says_so_and_keeps_nothing(site: Any) -> None:
    client, double, root = site
    double.unavailable = True
    sent = await client.post("/api/ports", json={"code": "model = None"})
    assert sent.status_code == 503 and "remote workers" in sent.json()["detail"]
    assert leftovers(root) == []
    page = await form_post(client, data={"code": "model = None"})
    assert page.status_code == 503 and "remote workers" in page.text


async def test_an_oversize_model_is_refused_as_its_upload_passes_the_cap(site: Any) -> None:
    client, double, root = site  # this server takes models up to 1 MiB
    zip_start = b"PK\x03\x04" + b"\0" * (2**20)  # just over 1 MiB, within the envelope
    sent = await client.post("/api/ports", files={"file": ("big.keras", zip_start)})
    assert sent.status_code == 413 and "port_upload_mb" in sent.json()["detail"]

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: refused as bytes arrive
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.keras"'
               b"\r\n\r\n")
        for _ in range(4096):
            yield b"\0" * 65536

    sent = await client.post("/api/ports", content=endless(),
                             headers={"content-type": "multipart/form-data; boundary=b"})
    assert sent.status_code == 413 and "larger than 1 MiB" in sent.json()["detail"]
    page = await form_post(client, files={"file": ("big.keras", zip_start)})
    assert page.status_code == 413 and "larger than 1 MiB" in page.text
    page = await form_post(client, files={"file": ("huge.keras", zip_start * 2)})
    assert page.status_code == 413 and "larger than 1 MiB" in page.text  # the form, again
    assert page.headers["content-type"].startswith("text/html") and 'id="port-file"' in page.text
    assert double.orders == [] and leftovers(root) == []


@contextlib.asynccontextmanager
async def serving(settings: Settings, executor: PortDouble) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, executor=executor)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with (app.state.sidebyside.running(),
                httpx.AsyncClient(transport=transport, base_url="http://test") as client):
        yield client


async def test_a_port_a_restart_interrupted_runs_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, packs_dir=ROOT / "lessons")
    first, second = PortDouble(), PortDouble()
    first.release.clear()  # the server stops while this port runs
    async with serving(settings, first) as client:
        sent = await client.post("/api/ports", files={"file": ("net.keras", keras_bytes())})
        url, token = sent.json()["report_url"], sent.json()["token"]
        await asyncio.sleep(0.1)
        assert len(first.orders) == 1
    async with serving(settings, second) as client:
        for _ in range(50):
            body = (await client.get(url, headers={"Authorization": f"Bearer {token}"})).json()
            if body["status"] != "porting":
                break
            await asyncio.sleep(0.05)
    order, model, _ = second.orders[0]
    assert order.filename == "net.keras" and model is not None
    assert body["status"] == "proved" and "port.zip" in body["files"]


async def test_the_port_api_is_in_the_schema(site: Any) -> None:
    client, _, _ = site
    paths = (await client.get("/openapi.json")).json()["paths"]
    body = paths["/api/ports"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert "code" in body["application/json"]["schema"]["properties"]
    assert "202" in paths["/api/ports"]["post"]["responses"]
    assert {"/api/ports/{port_id}", "/api/ports/{port_id}/{name}"} <= set(paths)


async def test_one_port_at_a_time_per_client_even_when_two_arrive_together(site: Any) -> None:
    client, double, root = site
    double.release.clear()
    sent = await asyncio.gather(*(client.post("/api/ports", files={
        "file": ("net.keras", keras_bytes())}) for _ in range(2)))
    assert sorted(r.status_code for r in sent) == [202, 429]
    refused = next(r for r in sent if r.status_code == 429)
    assert refused.headers["retry-after"] and "port running" in refused.json()["detail"]
    assert len(double.orders) == 1 and len(list(root.iterdir())) == 1
    double.release.set()


NPY = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"


async def test_the_form_takes_the_users_inputs_and_the_result_names_the_batches(
        site: Any) -> None:
    client, double, root = site
    form = (await client.get("/port")).text
    assert 'name="inputs" type="file" accept=".npy,.npz"' in form and "at most 1 MiB" in form
    double.report = double.report.model_validate({
        **double.report.model_dump(), "layers": [
            {"name": "dense", "class_name": "Dense", "attribute": "dense", "shape": [3, 2],
             "max_abs_err": 0.0, "max_rel_err": 0.0, "status": "pass"}],
        "batches": ["seeded random inputs (seed 0, 2 samples)", "your inputs (3 samples)"]})
    sent = await form_post(client, files={"file": ("net.keras", keras_bytes()),
                                          "inputs": ("mine.npy", NPY)})
    assert sent.status_code == 303, sent.text
    order, _, _ = double.orders[-1]
    assert order.inputs == ".npy" and double.inputs[-1] == NPY
    port_id = sent.headers["location"].rsplit("/", 1)[1]
    assert not list((root / port_id).glob("inputs.*"))  # gone once ported
    page = (await client.get(sent.headers["location"])).text
    assert ("Both models ran on the same batches: seeded random inputs (seed 0, 2 samples); "
            "your inputs (3 samples), in float32") in page


@pytest.mark.parametrize(("name", "data", "status", "says"), [
    ("mine.pkl", NPY, 415, "Inputs are a .npy file"),
    ("mine.npy", b"PK\x03\x04", 422, "numpy&#39;s magic"),
    ("mine.npz", NPY, 422, "not a whole .npz file"),
    ("mine.npy", NPY + b"\0" * 2**20, 413, "larger than 1 MiB (setting port_inputs_mb)"),
])
async def test_inputs_the_web_refuses_leave_no_file(site: Any, name: str, data: bytes,
                                                    status: int, says: str) -> None:
    client, double, root = site
    sent = await form_post(client, files={"file": ("net.keras", keras_bytes()),
                                          "inputs": (name, data)})
    assert sent.status_code == status and says in sent.text, sent.text[-2000:]
    api = await client.post("/api/ports", files={"file": ("net.keras", keras_bytes()),
                                                 "inputs": (name, data)})
    assert api.status_code == status
    assert double.orders == [] and leftovers(root) == []


async def test_inputs_over_both_caps_are_refused_as_they_arrive(site: Any) -> None:
    client, double, root = site  # models and inputs up to 1 MiB each
    sent = await client.post("/api/ports", files={
        "file": ("net.keras", keras_bytes()), "inputs": ("mine.npy", NPY + b"\0" * 2**21)})
    assert sent.status_code == 413 and "port_inputs_mb" in sent.json()["detail"]
    assert double.orders == [] and leftovers(root) == []
