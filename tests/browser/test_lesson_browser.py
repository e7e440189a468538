"""A learner in a real browser: edit, run, compare, fail, fix, switch themes, use the keyboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

LESSON = "/lessons/example-layers"
SUM = "#step-sum-along-an-axis"
RESHAPE = "#step-reshape-to-a-column"
RUN_S = 90_000  # a cold pool on a busy machine


def editor(page: Page, step: str, side: str) -> object:
    return page.locator(f"{step} .side.{side} .cm-content")


def type_at_end(page: Page, step: str, side: str, text: str) -> None:
    editor(page, step, side).click()  # type: ignore[attr-defined]
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def test_catalog_links_to_the_lessons(page: Page, live_server: LiveServer, shots: Path) -> None:
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("PyTorch")
    page.get_by_role("link", name=re.compile("Reductions, dense layers")).first.click()
    expect(page).to_have_url(re.compile(LESSON))
    page.goto(live_server.url + "/")
    page.screenshot(path=shots / "catalog.png", full_page=True)


def test_edit_the_pytorch_snippet_run_and_see_the_output(
        page: Page, live_server: LiveServer, shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    page.screenshot(path=shots / "lesson.png", full_page=True)
    type_at_end(page, SUM, "pytorch", "\nprint('column sums:', total.tolist())\n")
    expect(page.locator(f"{SUM} .side.pytorch")).to_have_class(re.compile("is-edited"))
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator("pre.stdout")).to_have_text(
        "column sums: [5.0, 7.0, 9.0]\n", timeout=RUN_S)
    expect(result.locator(".badge")).to_have_text("ran")
    page.locator(SUM).screenshot(path=shots / "result.png")


def test_run_both_shows_the_verdict(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    page.locator(f"{SUM} button[data-run=both]").click()
    verdict = page.locator("#verdict-sum-along-an-axis")
    expect(verdict).to_contain_text("Both sides compute the same values.", timeout=RUN_S)
    expect(verdict.locator("tbody tr")).to_have_count(2)
    expect(verdict.locator("svg.timing-chart .bar")).to_have_count(2)


def test_a_failing_snippet_marks_its_line(page: Page, live_server: LiveServer,
                                          shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, SUM, "pytorch", "\nbad = torch.ones(2) @ torch.ones(3)\n")
    page.keyboard.press("Control+Enter")
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".error-title")).to_contain_text("line 7", timeout=RUN_S)
    marked = page.locator(f"{SUM} .side.pytorch .cm-error-line")
    expect(marked).to_have_count(1)
    expect(marked).to_have_text("bad = torch.ones(2) @ torch.ones(3)")
    page.locator(SUM).screenshot(path=shots / "error.png")
    editor(page, SUM, "pytorch").press("Backspace")  # type: ignore[attr-defined]
    expect(marked).to_have_count(0)  # an edit clears the mark


def test_a_printed_script_tag_is_shown_as_text(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, SUM, "pytorch", "\nprint('<script>document.title = \"pwned\"</script>')\n")
    page.keyboard.press("Control+Enter")
    stdout = page.locator("#result-sum-along-an-axis-pytorch pre.stdout")
    expect(stdout).to_have_text('<script>document.title = "pwned"</script>\n', timeout=RUN_S)
    assert page.title() != "pwned"
    assert page.locator("#result-sum-along-an-axis-pytorch script").count() == 0


def test_an_exercise_passes_after_the_fix(page: Page, live_server: LiveServer,
                                          shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    check = page.locator(f"{RESHAPE} button[data-run=exercise]")
    check.click()
    exercise = page.locator("#exercise-reshape-to-a-column")
    expect(exercise.locator(".check-line")).to_contain_text("Not yet.", timeout=RUN_S)
    exercise.get_by_role("button", name=re.compile("Show a hint")).click()
    expect(exercise.locator(".hint")).to_have_count(1)
    page.locator(f"{RESHAPE} .exercise-side .cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type("import torch\n\nx = torch.arange(6.0)\ncol = x.reshape(-1, 1)\n")
    check.click()
    expect(exercise.locator(".check-line")).to_contain_text("Passed", timeout=RUN_S)
    expect(exercise.locator(".hint")).to_have_count(1)  # hints already shown stay
    expect(exercise).to_have_class(re.compile("passed"))
    page.locator(RESHAPE).screenshot(path=shots / "exercise.png")
    page.reload()
    expect(page.locator("#exercise-reshape-to-a-column")).to_contain_text("You passed")


def test_dark_mode_follows_the_system_and_toggles(page: Page, live_server: LiveServer,
                                                  shots: Path) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto(live_server.url + LESSON)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "dark")
    page.locator(f"{SUM} button[data-run=both]").click()
    expect(page.locator("#verdict-sum-along-an-axis")).to_contain_text("same", timeout=RUN_S)
    page.screenshot(path=shots / "dark.png")
    dense = page.locator("#step-a-dense-layer")
    dense.locator("[role=tab][data-tab=graph]").click()
    drawing = dense.locator(".result.pytorch .graph-view img")
    expect(drawing).to_be_visible(timeout=RUN_S)
    dense.locator(".result.pytorch").get_by_role("button", name="Zoom in").click()
    expect(drawing).to_have_attribute("style", re.compile(r"scale\(1\.25\)"))
    dense.locator(".result.pytorch").get_by_role("button", name="Fit").click()
    dense.screenshot(path=shots / "graph-dark.png")
    toggle = page.locator("#theme-toggle")
    toggle.click()
    expect(html).to_have_attribute("data-theme", "light")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    page.reload()
    expect(html).to_have_attribute("data-theme", "light")  # the choice is remembered
    toggle.click()
    expect(html).to_have_attribute("data-theme", "dark")


def test_keyboard_only_use(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    target = page.locator(f"{SUM} .side.pytorch .cm-content")
    for _ in range(60):  # Tab until the first PyTorch editor has focus
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the PyTorch editor")
    page.keyboard.press("Control+End")
    page.keyboard.type("\nprint('typed without a mouse')\n")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#result-sum-along-an-axis-pytorch pre.stdout")).to_have_text(
        "typed without a mouse\n", timeout=RUN_S)
    page.keyboard.press("Tab")  # out of the editor: Tab is not swallowed
    assert not target.evaluate("el => el === document.activeElement")
    graph_tab = page.locator(f"{SUM} [role=tab][data-tab=graph]")
    page.locator(f"{SUM} [role=tab][data-tab=output]").focus()
    page.keyboard.press("ArrowRight")
    expect(graph_tab).to_be_focused()
    expect(graph_tab).to_have_attribute("aria-selected", "true")
    expect(page.locator(SUM)).to_have_attribute("data-tab", "graph")
    page.locator(f"{SUM} button[data-run=both]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#verdict-sum-along-an-axis")).to_contain_text("Both sides", timeout=RUN_S)
