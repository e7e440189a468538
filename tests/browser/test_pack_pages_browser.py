"""An author uploads a pack in the browser, watches its check finish, and downloads it;
copies the author token shown once, and signs in with it from another browser."""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import watched_page
from tests.conftest import LiveServer
from tests.test_packs_api import example_zip

pytestmark = pytest.mark.browser
UPLOADED = re.compile(r"\(version \d+\)")  # an uploaded pack's title in the catalogue


def test_an_author_uploads_a_pack_and_watches_its_check(
        live_server: LiveServer, page: Page, tmp_path: Path, shots: Path) -> None:
    zipped = tmp_path / "my-pack.zip"
    zipped.write_bytes(example_zip("browser-example"))
    page.goto(f"{live_server.url}/packs")
    page.set_input_files("#pack-file", str(zipped))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.locator("#author-token")).to_be_visible()  # a new pack: its token, once
    page.get_by_role("link", name="Follow the check of version 1").click()
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


def upload_in(page: Page, url: str, data: bytes, tmp_path: Path, name: str) -> None:
    zipped = tmp_path / name
    zipped.write_bytes(data)
    page.goto(f"{url}/packs")
    page.set_input_files("#pack-file", str(zipped))
    page.get_by_role("button", name="Upload and check").click()


@contextlib.contextmanager
def refusing_page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    """A tab in its own context that fails the test on any script error, but not on the
    4xx status of a page that refuses a form (Chromium logs that as a console error)."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme="light")
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" and not re.search(
        r"status of 4\d\d", m.text) else None)
    yield tab
    context.close()
    assert not problems, problems


def test_the_author_token_is_shown_once_copied_and_signs_in_another_browser(
        live_server: LiveServer, browser: Browser, tmp_path: Path, shots: Path) -> None:
    url = live_server.url
    with watched_page(browser, 1440, 900) as author:
        author.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        upload_in(author, url, example_zip("token-browser"), tmp_path, "a.zip")
        box = author.locator(".author-token")
        expect(box).to_be_visible()
        token = author.locator("#author-token").input_value()
        assert len(token) >= 22
        author.screenshot(path=shots / "packs-token.png", full_page=True)
        author.get_by_role("button", name="Copy").click()
        expect(author.get_by_role("button", name="Copied")).to_be_visible()
        assert author.evaluate("navigator.clipboard.readText()") == token
        # once: a reload of /packs, the version's page and the catalogue never show it again
        for path in ("/packs", "/packs/token-browser/1", "/"):
            author.goto(url + path)
            assert token not in author.content(), path
        author.goto(f"{url}/packs")
        expect(author.locator("#author-token")).to_have_count(0)
        expect(author.locator(".pack-versions h3")).to_have_text(["token-browser"])
    with watched_page(browser, 390, 844) as phone:  # a new pack's token on a phone
        upload_in(phone, url, example_zip("token-phone"), tmp_path, "b.zip")
        expect(phone.locator("#author-token")).to_be_visible()
        phone.screenshot(path=shots / "packs-token-phone.png", full_page=True)
    with refusing_page(browser, 390, 844) as elsewhere:  # another browser: sign in
        elsewhere.goto(f"{url}/packs")
        expect(elsewhere.locator(".pack-versions")).to_have_count(0)
        elsewhere.get_by_label("Paste the author token").fill(token[:-2] + "xy")
        with elsewhere.expect_navigation() as navigation:
            elsewhere.get_by_role("button", name="Sign in as their author").click()
        assert navigation.value is not None and navigation.value.status == 403
        expect(elsewhere.locator("#sign-in-error")).to_contain_text("No pack here has that")
        elsewhere.screenshot(path=shots / "packs-sign-in-refused-phone.png", full_page=True)
        assert not [c for c in elsewhere.context.cookies() if c["name"] == "sbs_author"]
        elsewhere.get_by_label("Paste the author token").fill(token)
        elsewhere.get_by_role("button", name="Sign in as their author").click()
        expect(elsewhere.locator(".pack-versions h3")).to_have_text(["token-browser"])
        assert token not in elsewhere.content()
        elsewhere.screenshot(path=shots / "packs-signed-in-phone.png", full_page=True)
        elsewhere.get_by_role("link", name="version 1").click()
        expect(elsewhere.locator("h1")).to_contain_text("token-browser version 1")


def test_the_catalogue_shows_each_pack_once_at_its_latest_ready_version(
        live_server: LiveServer, browser: Browser, tmp_path: Path, shots: Path) -> None:
    url = live_server.url
    with watched_page(browser, 1440, 900) as page:
        upload_in(page, url, example_zip("catalogued"), tmp_path, "1.zip")
        page.get_by_role("link", name="Follow the check of version 1").click()
        expect(page.locator(".status-ready")).to_be_visible(timeout=120_000)
        upload_in(page, url, example_zip("catalogued", break_compare=True), tmp_path, "2.zip")
        expect(page.locator("h1")).to_contain_text("catalogued version 2")
        page.goto(f"{url}/")  # version 2 is being checked: not listed
        expect(page.locator("section.pack h2", has_text=UPLOADED)).to_have_text(
            ["Example pack (version 1)"])
        page.goto(f"{url}/packs/catalogued/2")
        expect(page.locator(".status-failed")).to_be_visible(timeout=120_000)
        upload_in(page, url, example_zip("catalogued", release="3.0.0"), tmp_path, "3.zip")
        expect(page.locator("h1")).to_contain_text("catalogued version 3")
        expect(page.locator(".status-ready")).to_be_visible(timeout=120_000)
        page.goto(f"{url}/")  # version 2 failed, version 3 is ready: only 3
        packs = page.locator("section.pack h2", has_text=UPLOADED)
        expect(packs).to_have_text(["Example pack (version 3)"])
        expect(page.locator('a[href^="/lessons/catalogued--v"]')).to_have_count(1)
        page.locator("section.pack", has=page.locator("h2", has_text=UPLOADED)).screenshot(
            path=shots / "catalog-pack.png")
        page.screenshot(path=shots / "catalog-desktop.png", full_page=True)
        author = [c for c in page.context.cookies() if c["name"] == "sbs_author"]
    with watched_page(browser, 390, 844) as phone:
        phone.context.add_cookies(author)  # type: ignore[arg-type]
        phone.goto(f"{url}/")
        expect(phone.locator("section.pack h2", has_text=UPLOADED)).to_have_text(
            ["Example pack (version 3)"])
        phone.locator("section.pack", has=phone.locator("h2", has_text=UPLOADED)).screenshot(
            path=shots / "catalog-pack-phone.png")
