"""An axe-core audit (WCAG 2.1 A and AA) of the catalogue, a lesson, the dashboard (and a
learner's code in its dialog), the join page, the projector view, the classes one teaches and
the form that starts a class, in light and dark mode: accessible by measurement, not by intent.

axe-core is vendored under tests/browser/vendor (axe-core 4.14.1 from npm, MPL-2.0) and
evaluated through the DevTools protocol, so the pages' CSP stays as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
RULES = "{runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}"
AUDIT = f"""async () => {{
  const result = await axe.run(document, {RULES});
  return result.violations.map(v => ({{id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}}));
}}"""
WAIT_S = 120_000


def audit(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE)
    return page.evaluate(AUDIT)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def live_class(live_server: LiveServer) -> dict[str, Any]:
    """A class with a learner who ran twice (one error), so every part of the dashboard shows."""
    with httpx.Client(base_url=live_server.url, timeout=90) as http:
        made = http.post("/api/classes", json={"pack": "example", "title": "Audit"}).json()
        token = http.post(f"/api/classes/{made['code']}/join", json={"name": "Ada"}).json()[
            "student_token"]
        for code in ("x = 1", "1 / 0"):
            http.post("/api/runs", json={"framework": "pytorch", "code": code},
                      headers={"Authorization": f"Bearer {token}"})
    return {**made, "student_token": token}  # type: ignore[no-any-return]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_wcag_aa_violations(browser: Browser, live_server: LiveServer,
                               live_class: dict[str, Any], scheme: str) -> None:
    code = live_class["code"]
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme=scheme)
    context.add_cookies([
        {"name": f"sbs_teach_{code}", "value": live_class["instructor_token"],
         "url": live_server.url}])
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for path in ("/", "/lessons/example-layers", f"/classes/{code}/dashboard",
                     f"/join/{code}", f"/classes/{code}/projector", "/classes",
                     "/classes/new"):
            page.goto(live_server.url + path)
            if path.startswith("/lessons"):  # outputs in place, as a learner reads them
                page.locator(".state-pending").first.wait_for(state="detached", timeout=WAIT_S)
            if path.endswith("/dashboard"):
                found[path] = audit(page)
                page.locator("table.roster a").first.click()  # a learner's code, in its dialog
                page.locator("#learner-dialog[open] .code-lines").first.wait_for()
                path = "a learner's code"
            found[path] = audit(page)
        # a learner's lesson with the class banner on it
        context.add_cookies([{"name": "sbs_class", "value": live_class["student_token"],
                              "url": live_server.url}])
        page.goto(live_server.url + "/lessons/example-layers")
        page.locator("#class-banner").wait_for()
        found["lesson in a class"] = audit(page)
        page.goto(f"{live_server.url}/join/{code}")  # joined already: "you're in as Ada"
        page.locator(".joined-already").wait_for()
        found["join page, joined"] = audit(page)
    finally:
        context.close()
    assert {path: v for path, v in found.items() if v} == {}


def _outputs_in_place(page: Page, url: str) -> None:
    """Reload until every step shows its output: a view computes only a few at a time."""
    for _ in range(40):
        page.goto(url)
        pending = page.locator(".state-pending")
        if pending.count() == 0:
            return
        for _ in range(pending.count()):
            pending.nth(0).wait_for(state="detached", timeout=WAIT_S)
    raise AssertionError(f"{url}: outputs still pending after 40 views")


def test_every_bundled_lesson_has_no_violations_while_loading_and_after(
        browser: Browser, live_server: LiveServer) -> None:
    from app.packs.loader import load_packs
    from app.settings import ROOT

    lessons = [lesson.id for lesson in load_packs(ROOT / "lessons").lessons]
    contexts = {scheme: browser.new_context(viewport={"width": 1360, "height": 900},
                                            color_scheme=scheme)
                for scheme in ("light", "dark")}
    pages = {scheme: context.new_page() for scheme, context in contexts.items()}
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for lesson in lessons:
            url = f"{live_server.url}/lessons/{lesson}"
            for scheme, page in pages.items():  # as first opened: outputs on their way
                page.goto(url)
                found[f"{lesson} {scheme}, loading"] = audit(page)
            _outputs_in_place(pages["light"], url)
            for scheme, page in pages.items():
                page.goto(url)
                found[f"{lesson} {scheme}"] = audit(page)
    finally:
        for context in contexts.values():
            context.close()
    assert len(found) == 4 * len(lessons) and len(lessons) >= 19
    assert {where: v for where, v in found.items() if v} == {}
