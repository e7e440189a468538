"""An author's live preview (`serve --packs DIR --reload`): edit a lesson, the open page follows."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect

from app.main import create_app
from app.settings import ROOT, Settings
from tests.conftest import free_port
from tests.test_classes_api import QuickPool

pytestmark = pytest.mark.browser
LESSON = "01-layers.md"


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    packs = tmp_path / "packs"
    shutil.copytree(ROOT / "lessons" / "example", packs / "example")
    settings = Settings(host="127.0.0.1", port=free_port(), data_dir=tmp_path / "data",
                        packs_dir=packs, reload_packs=True)
    app = create_app(settings, executor=QuickPool())  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://{settings.host}:{settings.port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/api/lessons", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url, packs / "example" / LESSON
    server.should_exit = True
    thread.join(timeout=30)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_reload_stream_announces_each_change(preview: tuple[str, Path]) -> None:
    url, lesson = preview
    with httpx.Client(base_url=url, timeout=10) as http, \
            http.stream("GET", "/dev/reload") as events:
        lines = events.iter_lines()
        assert next(lines) == ": watching"
        started = time.monotonic()
        edit(lesson, "title: Reductions, dense layers and shapes", "title: Edited live")
        event = next(line for line in lines if line.startswith("event:"))
        assert event == "event: reload" and time.monotonic() - started < 5
        assert "Edited live" in http.get("/lessons/example-layers").text


def test_an_open_page_follows_the_edits_and_shows_errors_at_their_line(
        preview: tuple[str, Path], page: Page, shots: Path) -> None:
    url, lesson = preview
    page.goto(f"{url}/lessons/example-layers")
    expect(page.locator("h1")).to_contain_text("Reductions, dense layers and shapes")
    page.wait_for_timeout(300)  # the page's event stream is open
    started = time.monotonic()
    edit(lesson, "title: Reductions, dense layers and shapes", "title: Reductions, edited")
    expect(page.locator("h1")).to_contain_text("Reductions, edited", timeout=5000)
    refreshed_s = time.monotonic() - started
    print(f"page refreshed {refreshed_s * 1000:.0f} ms after the save")
    # a broken lesson: the catalog page names the file and line, no 500
    page.goto(f"{url}/")
    page.wait_for_timeout(300)
    edit(lesson, "level: beginner", "level: wizard")
    errors = page.locator(".preview-errors")
    expect(errors).to_contain_text(f"{LESSON}:", timeout=5000)
    expect(errors).to_contain_text("level")
    page.screenshot(path=shots / "preview-errors.png")
    edit(lesson, "level: wizard", "level: beginner")
    expect(errors).to_have_count(0, timeout=5000)
