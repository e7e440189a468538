"""The instructor's side of a live class in real Chromium: the projector view, the dashboard
at small sizes, a learner's code in a panel, an accurate roster, the classes one teaches,
and the form that starts a class.

Screenshots go to /tmp/shots (outside the repository), at the sizes a class meets:
1440×900, 1024×768, a 390-px phone, dark mode, and a 1280×720 projector at 150 %.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from app.packs.loader import load_packs
from app.settings import ROOT
from tests.browser.conftest import watched_page
from tests.conftest import LiveServer
from tests.test_packs_api import example_zip, finished_report, upload

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
LESSON = "/lessons/example-layers"
# Classes here start from an address of their own: one address may start 10 an hour.
ADDRESS = {"X-Forwarded-For": "10.77.0.1"}
ADDRESSES = (f"10.78.{n // 250}.{n % 250 + 1}" for n in itertools.count())
CORE_LESSONS = len([lesson for lesson in load_packs(ROOT / "lessons").lessons
                    if lesson.pack == "tf-to-torch" and lesson.steps])
FAILING = "import torch\nx = torch.ones(2)\ny = x @ torch.ones(3)\nprint(y)"


def new_class(live_server: LiveServer, title: str, **body: Any) -> dict[str, Any]:
    made = httpx.post(f"{live_server.url}/api/classes", timeout=30, headers=ADDRESS,
                      json={"pack": "example", "title": title, **body})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def join(live_server: LiveServer, code: str, name: str) -> str:
    # each from an address of its own: one address may try 60 joins a minute
    joined = httpx.post(f"{live_server.url}/api/classes/{code}/join", json={"name": name},
                        timeout=30, headers={"X-Forwarded-For": next(ADDRESSES)})
    assert joined.status_code == 201, joined.text
    return joined.json()["student_token"]  # type: ignore[no-any-return]


def run(live_server: LiveServer, token: str, code: str) -> dict[str, Any]:
    ran = httpx.post(f"{live_server.url}/api/runs", timeout=90,
                     json={"framework": "pytorch", "code": code},
                     headers={"Authorization": f"Bearer {token}"})
    assert ran.status_code == 200, ran.text
    return ran.json()  # type: ignore[no-any-return]


@contextlib.contextmanager
def screen(browser: Browser, live_server: LiveServer, made: dict[str, Any] | None, width: int,
           height: int, *, scale: float = 1, scheme: str = "light") -> Iterator[Page]:
    """A tab signed in as the class's instructor, that fails the test on any script error
    or CSP violation (as `watched_page`), at a size, zoom and colour scheme."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=scale, color_scheme=scheme)
    if made is not None:
        context.add_cookies([{"name": f"sbs_teach_{made['code']}",
                              "value": made["instructor_token"], "url": live_server.url}])
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    yield tab
    context.close()
    assert not problems, problems


def shot(tab: Page, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def box(tab: Page, selector: str) -> dict[str, float]:
    found = tab.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found  # type: ignore[return-value]


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


# ---- 9. the projector view ----------------------------------------------------------------

def test_the_projector_shows_a_large_code_and_follows_the_class_live(
        browser: Browser, live_server: LiveServer) -> None:
    made = new_class(live_server, "PyTorch for TF users · Thursday")
    code = made["code"]
    zed = join(live_server, code, "Zed Private")
    run(live_server, zed, FAILING)
    with screen(browser, live_server, made, 1280, 720, scale=1.5) as tab:
        with screen(browser, live_server, made, 1440, 900) as dashboard:
            dashboard.goto(f"{live_server.url}/classes/{code}/dashboard")
            with dashboard.context.expect_page() as opened:
                dashboard.get_by_role("link", name="Projector view").click()
            assert opened.value.url.endswith(f"/classes/{code}/projector")
            opened.value.close()
        tab.goto(f"{live_server.url}/classes/{code}/projector")
        expect(tab.locator(".projector-code")).to_have_text(code)
        expect(tab.locator("img.projector-qr")).to_have_js_property("complete", True)
        expect(tab.locator("h1")).to_have_text("PyTorch for TF users · Thursday")
        expect(tab.locator(".projector-pack")).to_contain_text("Example pack, version 1.0.0")
        expect(tab.locator(".projector-now")).to_contain_text("We start with")
        text = tab.locator("body").inner_text()
        for private in ("Zed", "RuntimeError", made["instructor_token"], "instructor link"):
            assert private not in text, private
        # the room reads it from the back, without scrolling
        size = float(tab.locator(".projector-code").evaluate(
            "e => parseFloat(getComputedStyle(e).fontSize)"))
        assert size >= 48, size
        for part in (".projector-code", "img.projector-qr", ".projector-now"):
            found = box(tab, part)
            assert found["y"] + found["height"] <= 720, (part, found)
        shot(tab, "projector-1280x720-dpr150")
    # the browser zoomed to 150 % on that projector: 853×480 CSS pixels
    with screen(browser, live_server, made, 853, 480, scale=1.5) as tab:
        tab.goto(f"{live_server.url}/classes/{code}/projector")
        for part in (".projector-code", "img.projector-qr"):
            found = box(tab, part)
            assert found["y"] + found["height"] <= 480, (part, found)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 853
        shot(tab, "projector-1280x720-zoom150")

        # it follows the class by itself
        auth = {"Authorization": f"Bearer {made['instructor_token']}"}
        httpx.post(f"{live_server.url}/api/classes/{code}/follow", headers=auth, timeout=30,
                   json={"lesson": "example-layers", "step": "a-dense-layer"})
        expect(tab.locator(".projector-now")).to_contain_text("A dense layer")
        httpx.post(f"{live_server.url}/api/classes/{code}/message", headers=auth, timeout=30,
                   json={"text": "Ten-minute break"})
        expect(tab.locator(".projector-message")).to_have_text("Ten-minute break")
        shot(tab, "projector-following-1280x720-zoom150")
        with screen(browser, live_server, made, 1280, 720, scheme="dark") as dark:
            dark.goto(f"{live_server.url}/classes/{code}/projector")
            expect(dark.locator(".projector-now")).to_contain_text("A dense layer")
            shot(dark, "projector-dark-1280x720")
        with screen(browser, live_server, made, 390, 844) as phone:
            phone.goto(f"{live_server.url}/classes/{code}/projector")
            expect(phone.locator(".projector-code")).to_have_text(code)
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            shot(phone, "projector-phone-390", full_page=True)
        httpx.post(f"{live_server.url}/api/classes/{code}/end", headers=auth, timeout=30)
        expect(tab.locator(".projector-view")).to_contain_text("This class has ended")
        expect(tab.locator(".projector-code")).to_have_count(0)


# ---- 10. the dashboard at 1024×768 and at 150 % ----------------------------------------------

@pytest.fixture(scope="module")
def big_class(live_server: LiveServer) -> dict[str, Any]:
    """Every lesson of the core pack, and a dozen learners on it."""
    made = new_class(live_server, "Every lesson, all afternoon: TensorFlow to PyTorch",
                     pack="tf-to-torch")
    for i in range(12):
        token = join(live_server, made["code"], f"Learner number {i + 1}")
        if i % 4 == 3:
            for _ in range(3):
                run(live_server, token, "raise ValueError('not yet')")
    return made


@pytest.mark.parametrize(("width", "height", "scale", "scheme"), [
    (1440, 900, 1, "light"), (1024, 768, 1, "light"), (1280, 720, 1.5, "light"),
    (853, 480, 1.5, "light"),
    (1024, 768, 1, "dark"), (390, 844, 1, "light")])
def test_the_dashboard_has_no_overlaps_and_a_compact_map_with_every_lesson(
        browser: Browser, live_server: LiveServer, big_class: dict[str, Any], width: int,
        height: int, scale: float, scheme: str) -> None:
    code = big_class["code"]
    with screen(browser, live_server, big_class, width, height, scale=scale,
                scheme=scheme) as tab:
        tab.goto(f"{live_server.url}/classes/{code}/dashboard")
        expect(tab.locator("table.roster tbody tr")).to_have_count(12)
        expect(tab.locator("table.roster tr.stuck")).to_have_count(3)
        name = f"dashboard-{width}x{height}" + (f"-{int(scale * 100)}pct" if scale != 1 else "")
        shot(tab, name + ("-dark" if scheme == "dark" else ""), full_page=True)
        # the roster stays in its own column: nothing of it runs under the map
        roster, side = box(tab, ".roster-slot"), box(tab, ".dash-side")
        assert not overlap(roster, side), (roster, side)
        assert not overlap(box(tab, ".dash-head"), roster)
        table = box(tab, "table.roster")
        clips = tab.locator(".roster-slot").evaluate(
            "e => getComputedStyle(e).overflowX !== 'visible'")
        shown_right = min(table["x"] + table["width"],
                          roster["x"] + roster["width"] if clips else float("inf"))
        if side["x"] > roster["x"]:  # side by side
            assert shown_right <= side["x"], (table, side)
        else:
            assert shown_right <= width, table
        # a wide table scrolls in its own slot, never the page sideways
        assert tab.evaluate("document.documentElement.scrollWidth") <= width
        # every lesson: one line each, only the lesson anyone is on open
        lessons = tab.locator("#step-map details")
        expect(lessons).to_have_count(CORE_LESSONS)
        assert tab.locator("#step-map details[open]").count() == 1
        assert box(tab, "#step-map")["height"] <= CORE_LESSONS * 30 + 200
        # a lesson opened by hand stays open when the map is drawn again
        tab.locator("#step-map summary").nth(5).click()
        httpx.post(f"{live_server.url}/api/classes/{code}/message", timeout=30,
                   headers={"Authorization": f"Bearer {big_class['instructor_token']}"},
                   json={"text": f"redraw {width}"})
        expect(tab.locator("#class-status")).to_contain_text("learners")
        tab.wait_for_timeout(800)  # the map is drawn again after the settle time
        expect(tab.locator("#step-map details").nth(5)).to_have_attribute("open", "")


# ---- 11. a learner's code ----------------------------------------------------------------------

def test_a_learners_code_opens_in_a_panel_with_the_failing_line_and_follows_their_runs(
        browser: Browser, live_server: LiveServer) -> None:
    made = new_class(live_server, "Reading code")
    code = made["code"]
    tokens = [join(live_server, code, f"Learner {i}") for i in range(25)]
    failed = run(live_server, tokens[-1], FAILING)
    assert failed["status"] == "error", failed
    with screen(browser, live_server, made, 1024, 768) as tab:
        tab.goto(f"{live_server.url}/classes/{code}/dashboard")
        row = tab.locator("table.roster tbody tr", has_text="Learner 24")
        row.get_by_role("link", name="Learner 24").click()
        dialog = tab.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("h2")).to_have_text("Learner 24")
        # large, and in view without scrolling the page
        panel = box(tab, "#learner-dialog")
        assert panel["width"] >= 0.9 * 1024 and panel["height"] >= 0.6 * 768, panel
        assert panel["y"] >= 0 and panel["y"] + panel["height"] <= 768
        assert tab.evaluate("window.scrollY") < 100  # only what the click itself scrolled
        lines = dialog.locator(".pytorch .code-lines .line")
        expect(lines).to_have_count(4)
        expect(lines.nth(0).locator(".ln")).to_have_text("1")
        failing = dialog.locator(".pytorch .line.failing")
        expect(failing).to_have_count(1)
        expect(failing).to_contain_text("y = x @ torch.ones(3)")
        expect(dialog.locator(".pytorch .run-status")).to_have_text("error")
        shot(tab, "learner-code-1024x768")

        # the learner runs again: the open panel follows
        run(live_server, tokens[-1], "import torch\nprint(torch.ones(2).sum())")
        expect(dialog.locator(".pytorch .code-lines")).to_contain_text("torch.ones(2).sum()",
                                                                       timeout=15_000)
        expect(dialog.locator(".line.failing")).to_have_count(0)
        expect(dialog.locator(".pytorch .run-status")).to_have_text("ok")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()
        # closed, it follows no one: the panel is the empty one again
        expect(tab.locator("#learner-code[hx-trigger]")).to_have_count(0)
        run(live_server, tokens[-1], "print(1)")
        tab.wait_for_timeout(800)
        expect(dialog).to_be_hidden()
    with screen(browser, live_server, made, 390, 844, scheme="dark") as phone:
        phone.goto(f"{live_server.url}/classes/{code}/dashboard")
        phone.locator("table.roster tbody tr", has_text="Learner 24").get_by_role(
            "link").click()
        expect(phone.get_by_role("dialog")).to_be_visible()
        shot(phone, "learner-code-phone-dark")


# ---- 12. an accurate roster ----------------------------------------------------------------------

def test_the_roster_tells_names_apart_drops_stuck_on_moving_and_knows_who_joined(
        browser: Browser, live_server: LiveServer) -> None:
    made = new_class(live_server, "Names")
    code = made["code"]
    with screen(browser, live_server, made, 1440, 900) as tab, \
            watched_page(browser, 1280, 800) as learner:
        tab.goto(f"{live_server.url}/classes/{code}/dashboard")
        learner.goto(made["join_url"])
        learner.get_by_label("Your name").fill("Eve")
        learner.get_by_role("button", name="Join the class").click()
        expect(learner).to_have_url(re.compile(LESSON))
        join(live_server, code, "Eve")
        rows = tab.locator("table.roster tbody th a")
        expect(rows).to_have_text(["Eve", "Eve (2)"])

        # three failures in a row: stuck; moving on to another step: not any more
        token = next(c["value"] for c in learner.context.cookies() if c["name"] == "sbs_class")
        for _ in range(3):
            run(live_server, token, "raise ValueError('stuck here')")
        eve = tab.locator("table.roster tbody tr", has=tab.get_by_role("link", name="Eve",
                                                                       exact=True))
        expect(eve).to_have_class(re.compile("stuck"))
        learner.locator("#title-reshape-to-a-column").scroll_into_view_if_needed()
        expect(eve.locator("td").first).to_contain_text("Reshape", timeout=15_000)
        expect(eve).not_to_have_class(re.compile("stuck"))
        shot(tab, "roster-names-1440x900")

        # the join link again: "you're in", not a second seat
        learner.goto(made["join_url"])
        expect(learner.locator(".joined-already")).to_have_text("You're in as Eve.")
        expect(learner.get_by_label("Your name")).to_have_count(0)
        learner.get_by_role("link", name="Continue where you were").click()
        expect(learner).to_have_url(re.compile(LESSON + "#step-reshape-to-a-column"))
        expect(rows).to_have_count(2)


# ---- 13. the classes one teaches, the way back, the end -------------------------------------

def test_my_classes_the_way_back_from_a_lesson_and_end_class_at_once(
        browser: Browser, live_server: LiveServer) -> None:
    first = new_class(live_server, "Monday morning")
    second = new_class(live_server, "Tuesday afternoon")
    join(live_server, second["code"], "Mallory")
    with screen(browser, live_server, first, 1440, 900) as tab:
        tab.context.add_cookies([{"name": f"sbs_teach_{second['code']}",
                                  "value": second["instructor_token"], "url": live_server.url}])
        tab.goto(f"{live_server.url}/classes")
        expect(tab.locator("table.taught tbody tr")).to_have_count(2)
        expect(tab.locator("table.taught tbody th")).to_have_text(
            ["Tuesday afternoon", "Monday morning"])
        shot(tab, "my-classes-1440x900")
        tab.get_by_role("link", name="Tuesday afternoon", exact=True).click()
        expect(tab).to_have_url(re.compile(f"/classes/{second['code']}/dashboard$"))

        tab.goto(live_server.url + LESSON)
        banner = tab.locator("#teaching-banner")
        expect(banner).to_contain_text("Tuesday afternoon")
        shot(tab, "lesson-teaching-banner-1440x900")
        banner.get_by_role("link", name=re.compile("Back to the dashboard of Tuesday")).click()
        expect(tab).to_have_url(re.compile(f"/classes/{second['code']}/dashboard$"))

        expect(tab.get_by_role("button", name="Remove Mallory")).to_be_visible()
        tab.once("dialog", lambda dialog: dialog.accept())
        tab.get_by_role("button", name="End class").click()
        expect(tab.locator("#class-status")).to_contain_text("The class has ended")
        for gone in (tab.get_by_role("button", name="Follow me"),
                     tab.get_by_role("button", name="Send"),
                     tab.get_by_role("button", name="Remove Mallory"),
                     tab.get_by_role("button", name="Pause runs"),
                     tab.get_by_role("link", name="Projector view")):
            expect(gone).to_have_count(0, timeout=1000)  # at once, not on a reload
        expect(tab.get_by_role("link", name="Export CSV")).to_be_visible()
        shot(tab, "dashboard-ended-1440x900")
    with screen(browser, live_server, first, 390, 844, scheme="dark") as phone:
        phone.context.add_cookies([{"name": f"sbs_teach_{second['code']}",
                                    "value": second["instructor_token"],
                                    "url": live_server.url}])
        phone.goto(f"{live_server.url}/classes")
        expect(phone.locator("table.taught tbody tr")).to_have_count(2)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        shot(phone, "my-classes-phone-dark", full_page=True)


# ---- 14. starting a class -----------------------------------------------------------------------

def test_starting_a_class_offers_one_entry_per_pack_and_keeps_the_form_on_an_error(
        browser: Browser, live_server: LiveServer) -> None:
    with screen(browser, live_server, None, 1024, 768) as tab:
        tab.goto(f"{live_server.url}/classes/new?pack=tf-to-torch")
        core = tab.locator(".pack-choice[data-pack=tf-to-torch]")
        example = tab.locator(".pack-choice[data-pack=example]")
        expect(core.get_by_role("radio")).to_be_checked()
        expect(core.get_by_role("checkbox")).to_have_count(CORE_LESSONS)
        # the lessons of a pack not chosen can't be ticked
        expect(example.get_by_role("checkbox")).to_have_count(0)
        shot(tab, "class-new-1024x768", full_page=True)
        example.get_by_role("radio").check()
        expect(example.get_by_role("checkbox")).to_have_count(1)
        expect(core.get_by_role("checkbox")).to_have_count(0)
        core.get_by_role("radio").check()
        expect(core.get_by_role("checkbox")).to_have_count(CORE_LESSONS)
    # a refusal is a 422: its own page, as the shared fixture counts it a console error
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    try:
        form = context.new_page()
        form.goto(f"{live_server.url}/classes/new?pack=tf-to-torch")
        core = form.locator(".pack-choice[data-pack=tf-to-torch]")
        core.get_by_label("Autograd").check()
        form.get_by_label("Title").fill("   ")
        form.get_by_role("button", name="Create the class").click()
        expect(form.get_by_role("alert")).to_have_text("Give the class a title.")
        expect(core.get_by_role("radio")).to_be_checked()
        expect(core.get_by_label("Autograd")).to_be_checked()
        expect(form.get_by_label("Title")).to_have_value("   ")
        shot(form, "class-new-error-1024x768")
    finally:
        context.close()
    with screen(browser, live_server, None, 390, 844, scheme="dark") as phone:
        phone.goto(f"{live_server.url}/classes/new")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        shot(phone, "class-new-phone-dark", full_page=True)


def test_only_ready_versions_are_offered_and_a_versions_page_preselects_itself(
        browser: Browser, live_server: LiveServer, api: httpx.Client) -> None:
    first = upload(api, example_zip("picked-version")).json()
    token = first["author_token"]
    assert finished_report(api, first["report_url"], token)["status"] == "ready"
    broken = upload(api, example_zip("picked-version", break_compare=True), token=token).json()
    assert finished_report(api, broken["report_url"], token)["status"] == "failed"
    third = upload(api, example_zip("picked-version", release="3.0.0"), token=token).json()
    assert finished_report(api, third["report_url"], token)["status"] == "ready"
    with screen(browser, live_server, None, 1024, 768) as tab:
        tab.context.add_cookies([{"name": "sbs_author", "value": token,
                                  "url": live_server.url}])
        tab.goto(f"{live_server.url}/packs/picked-version/1")
        tab.get_by_role("link", name="start a class").click()
        expect(tab).to_have_url(re.compile(r"/classes/new\?pack=picked-version&version=1$"))
        entry = tab.locator(".pack-choice[data-pack=picked-version]")
        expect(entry).to_have_count(1)  # one entry for the pack, whatever its versions
        expect(entry.get_by_role("radio")).to_be_checked()
        picker = entry.get_by_role("combobox")
        expect(picker.locator("option")).to_have_text(["version 3 (newest)", "version 1"])
        expect(picker).to_have_value("1")
        expect(entry.locator(".version-note")).to_have_text("(version 1)")
        expect(entry.get_by_role("checkbox")).to_have_count(1)
        shot(tab, "class-new-versions-1024x768", full_page=True)
        picker.select_option("3")
        expect(entry.locator(".version-note")).to_have_text("(version 3)")
        expect(entry.locator("fieldset.pack-lessons:not([disabled])")).to_have_attribute(
            "data-version", "3")
        tab.get_by_label("Title").fill("Version three")
        tab.get_by_role("button", name="Create the class").click()
        expect(tab.locator(".dashboard h1")).to_have_text("Version three")
        tab.get_by_role("link", name="Projector view").evaluate("a => a.target = ''")
        tab.get_by_role("link", name="Projector view").click()
        expect(tab.locator(".projector-pack")).to_contain_text("version 3")
