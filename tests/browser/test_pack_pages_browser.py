"""An author uploads a pack in the browser, watches its check finish, and downloads it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.test_packs_api import example_zip

pytestmark = pytest.mark.browser


def test_an_author_uploads_a_pack_and_watches_its_check(
        live_server: LiveServer, page: Page, tmp_path: Path, shots: Path) -> None:
    zipped = tmp_path / "my-pack.zip"
    zipped.write_bytes(example_zip("browser-example"))
    page.goto(f"{live_server.url}/packs")
    page.set_input_files("#pack-file", str(zipped))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.locator("h1")).to_contain_text("browser-example version 1")
    expect(page.locator(".status-ready")).to_be_visible(timeout=120_000)  # it polls itself
    expect(page.locator(".check-report tbody tr")).to_have_count(4)
    page.screenshot(path=shots / "pack-version.png", full_page=True)
    download = page.request.get(f"{live_server.url}/packs/browser-example/1.zip")
    assert download.ok
    assert "browser-example/pack.yaml" in zipfile.ZipFile(io.BytesIO(download.body())).namelist()
    # its author previews a lesson, then starts a class from this version
    page.get_by_role("link", name="Reductions, dense layers and shapes").click()
    expect(page.locator("h1")).to_contain_text("Reductions, dense layers and shapes")
    assert "/lessons/browser-example--v1--example-layers" in page.url
    page.goto(f"{live_server.url}/classes/new")
    page.get_by_label("Title").fill("Our own pack")
    page.get_by_label("Example pack (version 1)").check()
    page.get_by_role("button", name="Create the class").click()
    expect(page.locator("h1")).to_contain_text("Our own pack")
    expect(page.locator(".dashboard")).to_be_visible()
    # the same browser is the pack's author: the same files again make no version; a
    # changed pack is version 2, listed on /packs
    again = page.context.new_page()  # its own tab: the 409 is a console error there
    again.goto(f"{live_server.url}/packs")
    again.set_input_files("#pack-file", str(zipped))
    with again.expect_navigation() as navigation:
        again.get_by_role("button", name="Upload and check").click()
    assert navigation.value is not None and navigation.value.status == 409
    expect(again.locator(".error-note")).to_contain_text("identical to version 1")
    again.close()
    page.goto(f"{live_server.url}/packs")
    changed = tmp_path / "my-pack-2.zip"
    changed.write_bytes(example_zip("browser-example", release="1.1.0"))
    page.set_input_files("#pack-file", str(changed))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.locator("h1")).to_contain_text("browser-example version 2")
    page.goto(f"{live_server.url}/packs")
    expect(page.locator(".pack-versions li")).to_have_count(2)


def test_a_refused_zip_is_explained_on_the_page(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    # Its own page: the refusal is a 422, which the shared fixture counts as a console error.
    context = browser.new_context()
    page = context.new_page()
    zipped = tmp_path / "evil.zip"
    zipped.write_bytes(example_zip("evil-example", evil="../outside.md"))
    page.goto(f"{live_server.url}/packs")
    page.set_input_files("#pack-file", str(zipped))
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Upload and check").click()
    response = navigation.value
    assert response is not None and response.status == 422
    expect(page.locator(".error-note")).to_contain_text("../outside.md")
    expect(page.locator(".error-note")).to_contain_text("leaves the pack's folder")
    context.close()
