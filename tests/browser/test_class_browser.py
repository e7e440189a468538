"""A live class in real Chromium: the instructor's dashboard and a learner's page, side by side."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import watched_page
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

LESSON = "/lessons/example-layers"
RUN_S = 90_000
SHOT = Path("/tmp/dashboard.png")


def new_class(live_server: LiveServer, title: str = "Tuesday: TF to PyTorch") -> dict[str, Any]:
    made = httpx.post(f"{live_server.url}/api/classes", timeout=30,
                      json={"pack": "example", "title": title})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


@pytest.fixture
def learner(browser: Browser) -> Iterator[Page]:
    """A second browser: the learner's, with its own cookies."""
    with watched_page(browser, 1280, 800) as tab:
        yield tab


def join_in_browser(learner: Page, url: str, name: str) -> None:
    learner.goto(url)
    learner.get_by_label("Your name").fill(name)
    learner.get_by_role("button", name="Join the class").click()
    expect(learner).to_have_url(re.compile(LESSON))
    expect(learner.locator("#class-banner")).to_contain_text(name)


def test_the_dashboard_follows_the_learner_and_the_learner_follows_the_instructor(
        page: Page, learner: Page, live_server: LiveServer) -> None:
    made = new_class(live_server)
    page.goto(made["instructor_url"])  # the private link signs this browser in
    expect(page).to_have_url(re.compile(f"/classes/{made['code']}/dashboard$"))
    expect(page.locator(".join-code")).to_have_text(made["code"])
    expect(page.locator("img.qr")).to_have_js_property("complete", True)

    join_in_browser(learner, made["join_url"], "Ada <i>L.</i>")
    row = page.locator("table.roster tbody tr", has_text="Ada <i>L.</i>")
    expect(row).to_have_count(1)  # arrived live, shown as text
    learner.locator("#step-sum-along-an-axis button[data-run=pytorch]").click()
    expect(learner.locator("#result-sum-along-an-axis-pytorch .badge")).to_have_text(
        "ran", timeout=RUN_S)
    expect(row.locator("td").nth(1)).to_have_text("1")  # runs, without a reload
    expect(row.locator(".run-status")).to_have_text("ok")

    # follow me: the learner's page scrolls to the step by itself
    assert learner.evaluate("window.scrollY") < 200
    page.locator("#follow-target").select_option("example-layers/reshape-to-a-column")
    page.get_by_role("button", name="Follow me").click()
    expect(page.locator("#class-status")).to_contain_text("following")
    expect(learner).to_have_url(re.compile("#step-reshape-to-a-column$"))
    expect(learner.locator("#class-banner")).to_contain_text("The instructor is at")
    expect(learner.locator("#title-reshape-to-a-column")).to_be_in_viewport()
    assert learner.evaluate("window.scrollY") > 500

    # pause: the learner's Run buttons say so, and come back on resume
    run = learner.locator("#step-reshape-to-a-column button[data-run=pytorch]")
    page.get_by_role("button", name="Pause runs").click()
    expect(run).to_have_text("Paused")
    expect(run).to_be_disabled()
    expect(learner.locator("#class-banner")).to_contain_text("Runs are paused by the instructor")
    page.get_by_role("button", name="Resume runs").click()
    expect(run).to_be_enabled()
    expect(run).to_contain_text("Run")

    # the instructor opens the learner's code, read-only, with the last result, in a dialog
    row.get_by_role("link").click()
    code = page.locator("#learner-code")
    expect(code).to_contain_text("total = torch.sum(x, dim=0)")
    expect(code.locator(".run-status")).to_have_text("ok")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()

    page.get_by_placeholder("Message to everyone…").fill("Five-minute break")
    page.get_by_role("button", name="Send").click()
    expect(learner.locator(".class-message")).to_contain_text("Five-minute break")


def test_a_dashboard_of_thirty_fits_one_screen(page: Page, live_server: LiveServer) -> None:
    made = new_class(live_server, "PyTorch for TensorFlow users · Tuesday 10:00")
    code, auth = made["code"], {"Authorization": f"Bearer {made['instructor_token']}"}
    steps = ["sum-along-an-axis", "a-dense-layer", "reshape-to-a-column"]
    names = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John",
             "Margaret", "Ken", "Dennis", "Radia", "Tim", "Leslie", "Sophie", "Guido",
             "Yukihiro", "Bjarne", "Anders", "Hedy", "Katherine", "Dorothy", "Mary", "Claude",
             "Niklaus", "Tony", "Robin", "Shafi", "Silvio", "Whitfield Diffie-Hellman Jr."]
    with httpx.Client(base_url=live_server.url, timeout=90) as http:
        for i, name in enumerate(names):
            http.cookies.clear()
            token = http.post(f"/api/classes/{code}/join", json={"name": name}).json()[
                "student_token"]
            page_text = http.get(LESSON).text
            csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page_text).group(1)  # type: ignore[union-attr]
            step = steps[i % 3 if i % 5 else 0]
            http.post(f"{LESSON}/steps/{step}/viewed",
                      headers={"HX-Request": "true", "X-CSRF-Token": csrf})
            failing = i % 7 == 3
            body = {"framework": "pytorch",
                    "code": "import torch\ntorch.ones(2) @ torch.ones(3)" if failing
                    else f"import torch\nx = torch.ones({i + 1})"}
            for _ in range(3 if failing else 1 + i % 3):
                ran = http.post("/api/runs", json=body,
                                headers={"Authorization": f"Bearer {token}"})
                assert ran.status_code == 200, ran.text
    httpx.post(f"{live_server.url}/api/classes/{code}/follow", headers=auth,
               json={"lesson": "example-layers", "step": "a-dense-layer"})

    page.set_viewport_size({"width": 1440, "height": 900})
    page.context.add_cookies([{"name": f"sbs_teach_{code}", "value": made["instructor_token"],
                               "url": live_server.url}])
    page.goto(f"{live_server.url}/classes/{code}/dashboard")
    rows = page.locator("table.roster tbody tr")
    expect(rows).to_have_count(30)
    expect(page.locator("table.roster tr.stuck")).to_have_count(4)  # i % 7 == 3
    expect(page.locator(".stuck-rule")).to_contain_text("3 failed runs or checks in a row")
    page.screenshot(path=str(SHOT))
    # one screen: the last learner and the map are visible without scrolling
    last = rows.nth(29).bounding_box()
    assert last is not None and last["y"] + last["height"] <= 900, last
    box = page.locator("#step-map").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 900
    heights = {round(rows.nth(i).bounding_box()["height"]) for i in range(30)}  # type: ignore[index]
    assert len(heights) == 1, heights  # every row the same height: nothing jumps
    before = rows.nth(10).bounding_box()
    http_run = httpx.post(f"{live_server.url}/api/runs", timeout=90, json={
        "framework": "pytorch", "code": "y = 1"}, headers={"Authorization": "Bearer x"})
    assert http_run.status_code == 401
    page.wait_for_timeout(500)
    assert rows.nth(10).bounding_box() == before


def test_the_api_docs_work_offline_under_the_csp(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/classes/{code}/roster")
           ).to_have_count(1)
    # no request left the machine (the `page` fixture also fails on any CSP violation)
    assert all(u.startswith(live_server.url) for u in page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)"))


def test_the_instructor_removes_a_learner_and_their_page_carries_on_alone(
        page: Page, learner: Page, live_server: LiveServer) -> None:
    made = new_class(live_server, "Removal")
    page.goto(made["instructor_url"])
    join_in_browser(learner, made["join_url"], "Mallory")
    row = page.locator("table.roster tbody tr", has_text="Mallory")
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove Mallory").click()
    expect(row).to_have_count(0)
    expect(page.locator("#class-status")).to_contain_text("0 learners")

    # the banner gives way to a note, live, and the page stops following the class
    expect(learner.locator(".class-removed")).to_contain_text("took you out of the class")
    expect(learner.locator("#class-banner")).to_have_count(0)
    expect(learner.locator("[sse-connect]")).to_have_count(0)
    learner.locator("#step-sum-along-an-axis button[data-run=pytorch]").click()
    expect(learner.locator("#result-sum-along-an-axis-pytorch .badge")).to_have_text(
        "ran", timeout=RUN_S)
    learner.reload()
    expect(learner.locator(".class-slot")).to_have_count(0)
    expect(page.locator("table.roster tbody tr", has_text="Mallory")).to_have_count(0)


def test_a_dashboard_over_the_stream_cap_still_works_and_goes_live_when_a_slot_frees(
        browser: Browser, live_server: LiveServer) -> None:
    made = new_class(live_server, "Seven screens")
    code = made["code"]
    url = f"{live_server.url}/classes/{code}/dashboard"
    cap = live_server.settings.sse_streams_per_token
    # A browser context each (a browser holds 6 connections to a host at most), and not
    # watched: the refused stream's console error is expected here.
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800})
                for _ in range(cap + 1)]
    try:
        tabs, statuses = [], []
        for context in contexts:
            context.add_cookies([{"name": f"sbs_teach_{code}",
                                  "value": made["instructor_token"], "url": live_server.url}])
            tab = context.new_page()
            with tab.expect_response(lambda r: r.url.endswith(f"/classes/{code}/live")) as live:
                tab.goto(url)
            tabs.append(tab)
            statuses.append(live.value.status)
        assert statuses == [200] * cap + [429], statuses
        last = tabs[-1]
        # refused its stream, the page still works: its forms answer by themselves
        last.get_by_role("button", name="Pause runs").click()
        expect(last.locator("#class-status")).to_contain_text("runs paused")
        contexts[0].close()  # a slot comes back; the page's stream retries and gets it
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            http.post(f"/api/classes/{code}/join", json={"name": "Late Lin"})
        expect(last.locator("table.roster tbody tr", has_text="Late Lin")).to_have_count(
            1, timeout=30_000)
    finally:
        for context in contexts:
            context.close()
