"""Someone ports a Keras model they saved in a notebook: uploads it from the header's
link, waits for the proof (pushed, not polled), reads the code and the table, follows
a trap to the lesson step that teaches it and downloads the zip."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from sandbox.porter.traps import LESSONS
from tests.browser.conftest import SHOTS, watched_page
from tests.browser.test_accessibility import audit
from tests.conftest import LiveServer
from tests.keras_files import save_keras_model

pytestmark = pytest.mark.browser


def test_a_saved_keras_model_is_ported_proved_and_downloaded(
        live_server: LiveServer, page: Page, tmp_path: Path, shots: Path) -> None:
    model = save_keras_model(tmp_path / "tiny_cnn.keras")
    asked: list[str] = []

    def on_request(request: Request) -> None:
        if "/ports/" in request.url:
            asked.append(request.url.removeprefix(live_server.url))

    page.on("request", on_request)
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Port a model").click()
    expect(page.locator("h1")).to_have_text("Port a Keras model to PyTorch")
    expect(page.get_by_label("atol")).to_have_value("1e-05")
    assert audit(page) == []  # WCAG 2.1 AA, by axe-core
    page.set_input_files("#port-file", str(model))
    page.screenshot(path=shots / "port-form.png", full_page=True)
    page.get_by_role("button", name="Port and prove").click()
    expect(page).to_have_url(re.compile(r"/ports/[\w-]+$"))
    result_path = page.url.removeprefix(live_server.url)
    page.locator("#port-result").screenshot(path=shots / "port-waiting.png")
    expect(page.locator(".port-verdict.status-proved")).to_be_visible(timeout=180_000)
    # pushed once over the port's event stream, never asked for again and again
    assert [u for u in asked if u == result_path] == [result_path]
    assert f"{result_path}/events" in asked or len(asked) == 1

    expect(page.locator(".port-source")).to_contain_text("class TinyCnn(nn.Module)")
    expect(page.locator(".port-summary")).to_contain_text("Conv2D")
    rows = page.locator(".port-proof tbody tr:not(.port-output-row)")
    expect(rows).to_have_count(4)  # conv, bn, flatten, head: one row per Keras layer
    expect(page.locator(".port-proof .row-fail")).to_have_count(0)
    expect(rows.filter(has_text="flatten").locator(".result-cell")).to_have_text("pass")
    page.screenshot(path=shots / "port-result.png", full_page=True)
    assert audit(page) == []

    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download all (zip)").click()
    saved = tmp_path / "port.zip"
    downloading.value.save_as(saved)
    assert downloading.value.suggested_filename == "TinyCnn_port.zip"
    names = {n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(io.BytesIO(saved.read_bytes()))
             .namelist()}
    assert {"model.py", "weights.safetensors", "port_report.json", "check.py"} <= names

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=shots / "port-result-390.png", full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390, f"the page scrolls sideways at 390 px ({wide} px wide)"
    page.set_viewport_size({"width": 1280, "height": 900})

    lesson, section = LESSONS["flatten-channels-last"]
    trap = page.locator(".port-traps tbody tr", has_text="flatten").locator("a.trap-link")
    expect(trap).to_have_text(section)
    href = trap.get_attribute("href") or ""
    assert href.startswith(f"/lessons/{lesson}#step-")
    trap.click()
    step = page.locator(href.partition("#")[1] + href.partition("#")[2])
    expect(step.locator("h2")).to_contain_text(section)
    expect(step).to_be_in_viewport()
    page.screenshot(path=shots / "port-trap-lesson.png")


def test_a_refused_snippet_keeps_what_was_typed(live_server: LiveServer,
                                                browser: Browser) -> None:
    with watched_page(browser, 390, 844, refused=(422,)) as page:
        refused_form(live_server, page)


def refused_form(live_server: LiveServer, page: Page) -> None:
    page.goto(f"{live_server.url}/port")
    editor = page.locator(".port-form .cm-content")
    editor.click()
    page.keyboard.type("model = build()")
    page.get_by_label("rtol").fill("-3")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Port and prove").click()
    assert navigation.value is not None and navigation.value.status == 422
    expect(page.locator("#port-error")).to_contain_text("rtol")
    expect(page.locator(".port-form .cm-content")).to_contain_text("model = build()")
    expect(page.get_by_label("rtol")).to_have_value("-3")
    page.screenshot(path=SHOTS / "port-form-refused-390.png", full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390, f"the form scrolls sideways at 390 px ({wide} px wide)"


HOSTILE = "<img src=x onerror=alert(1)>"


def test_a_hostile_layer_name_from_a_pasted_snippet_renders_inert(
        live_server: LiveServer, page: Page, shots: Path) -> None:
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    page.goto(f"{live_server.url}/port")
    page.locator(".port-form .cm-content").click()
    page.keyboard.type("import keras\n")
    page.keyboard.type("model = keras.Sequential([keras.Input((3,)), keras.layers.Dense("
                       f"2, name='{HOSTILE}')], name='evil<b>bold')")
    page.get_by_role("button", name="Port and prove").click()
    expect(page.locator(".port-verdict.status-proved")).to_be_visible(timeout=180_000)
    result = page.locator("#port-result")
    expect(result.locator(".port-proof tbody")).to_contain_text(HOSTILE)  # shown as text
    expect(result.locator("img")).to_have_count(0)
    expect(result.locator("b")).to_have_count(0)
    expect(result.locator(".port-summary")).to_contain_text("evil<b>bold")
    page.screenshot(path=shots / "port-hostile-names.png", full_page=True)
    page.get_by_role("button", name="Dark mode").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.screenshot(path=shots / "port-result-dark.png", full_page=True)
    assert audit(page) == []


def test_the_users_own_inputs_are_proved_and_a_misfit_says_what_it_expects(
        live_server: LiveServer, page: Page, tmp_path: Path, shots: Path) -> None:
    model = save_keras_model(tmp_path / "tiny_cnn.keras")
    mine, wrong = tmp_path / "mine.npy", tmp_path / "wrong.npy"
    np.save(mine, np.random.default_rng(4).standard_normal((3, 8, 8, 3)).astype(np.float32))
    np.save(wrong, np.zeros((3, 8, 8, 1), np.float32))
    page.goto(f"{live_server.url}/port")
    page.set_input_files("#port-file", str(model))
    page.get_by_label("Inputs to prove it on as well").set_input_files(str(mine))
    page.get_by_role("button", name="Port and prove").click()
    expect(page.locator(".port-verdict.status-proved")).to_be_visible(timeout=180_000)
    expect(page.locator("#port-batches")).to_contain_text(
        "seeded random inputs (seed 0, 2 samples); your inputs (3 samples)")
    page.screenshot(path=shots / "port-result-your-inputs.png", full_page=True)

    page.goto(f"{live_server.url}/port")
    page.set_input_files("#port-file", str(model))
    page.set_input_files("#port-inputs", str(wrong))
    page.get_by_role("button", name="Port and prove").click()
    expect(page.locator(".port-verdict.status-failed")).to_be_visible(timeout=180_000)
    expect(page.locator("#port-result")).to_contain_text(
        "expects shape (batch, 8, 8, 3); the given array has shape (3, 8, 8, 1)")
    assert audit(page) == []
