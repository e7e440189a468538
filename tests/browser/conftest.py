"""Real headless Chromium (Debian's, never a download) against the session's live server."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from app.settings import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "screenshots"


# Module scope, not session: Playwright's sync API keeps an event loop running
# on this thread while it is open, and later tests call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def watched_page(browser: Browser, width: int, height: int,
                 refused: tuple[int, ...] = ()) -> Iterator[Page]:
    """A tab in its own context (its own cookies) that fails the test on any script
    error or CSP violation.

    `refused`: HTTP statuses the test provokes on purpose (0: no answer at
    all); the browser's and htmx's console errors for those alone are expected.
    """
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme="light")
    tab = context.new_page()
    problems: list[str] = []
    expected = [re.compile(rf"status of {code} |Response Status Error Code {code} " if code
                           else r"net::ERR_FAILED|^htmx:(sendError|afterRequest), ")
                for code in refused]

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(e.search(message.text) for e in expected):
            problems.append(message.text)

    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on("console", on_console)
    yield tab
    context.close()
    assert not problems, problems  # no script errors, no CSP violations


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with watched_page(browser, 1360, 900) as tab:
        yield tab


@pytest.fixture(scope="session")
def shots() -> object:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS
