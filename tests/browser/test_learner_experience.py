"""A learner's work is never lost and nothing on the page misleads: drafts, refusals,
named crashes, warnings apart from errors, readable long code and values."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from app.settings import ROOT
from tests.browser.conftest import watched_page
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

LESSON = "/lessons/example-layers"
SUM = "#step-sum-along-an-axis"
RUN_S = 90_000


def type_at_end(page: Page, text: str, side: str = "pytorch") -> None:
    page.locator(f"{SUM} .side.{side} .cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def set_code(page: Page, code: str, side: str = "pytorch") -> None:
    """What the form will send, without typing it key by key (the editor copies into it)."""
    page.evaluate("([id, code]) => { document.getElementById(id).value = code; }",
                  [f"code-sum-along-an-axis-{side}", code])


def test_an_edit_survives_a_reload_and_reset_is_the_way_back(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nkept = total * 2\n")
    page.wait_for_timeout(600)  # the draft is saved a moment after typing stops
    page.reload()
    pytorch = page.locator(f"{SUM} .side.pytorch")
    expect(pytorch.locator(".cm-content")).to_contain_text("kept = total * 2")
    expect(pytorch).to_have_class(re.compile("is-edited"))
    # the precomputed output is of the lesson's code, not of the draft
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result).to_have_class(re.compile("is-stale"), timeout=RUN_S)
    page.locator(f"{SUM} [data-action=reset]").click()
    expect(pytorch.locator(".cm-content")).not_to_contain_text("kept = total * 2")
    page.wait_for_timeout(600)
    page.reload()
    expect(pytorch.locator(".cm-content")).not_to_contain_text("kept = total * 2")
    expect(pytorch).not_to_have_class(re.compile("is-edited"))


def test_a_shared_link_shows_its_code_not_the_browsers_draft(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\ndraft_only = 1\n")
    page.wait_for_timeout(600)
    page.goto(live_server.url + LESSON + "?share=nonexistent")
    expect(page.locator(f"{SUM} .side.pytorch .cm-content")).not_to_contain_text("draft_only")


def test_a_run_result_older_than_the_code_is_marked_stale(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".badge")).to_have_text("ran", timeout=RUN_S)
    expect(result).not_to_have_class(re.compile("is-stale"))
    type_at_end(page, "\n# changed\n")
    expect(result).to_have_class(re.compile("is-stale"))


@pytest.mark.parametrize(("code", "said"), [
    ("x = 1\n" + "#" * 70_000 + "\n", "can't run this code"),
    ("x = 1\n\x00\n", "can't run this code"),
])
def test_code_the_server_refuses_is_said_in_the_panels_and_the_verdict(
        browser: Browser, live_server: LiveServer, code: str, said: str) -> None:
    with watched_page(browser, 1360, 900, refused=(422,)) as page:
        refused_both(page, live_server, code, said)


def refused_both(page: Page, live_server: LiveServer, code: str, said: str) -> None:
    page.goto(live_server.url + LESSON)
    page.locator(f"{SUM} button[data-run=both]").click()
    verdict = page.locator("#verdict-sum-along-an-axis")
    expect(verdict).to_contain_text("Both sides compute the same values.", timeout=RUN_S)
    set_code(page, code)
    page.locator(f"{SUM} button[data-run=both]").click()
    expect(verdict).to_contain_text("Not compared.")
    expect(verdict).to_contain_text(said)
    expect(verdict).not_to_contain_text("Both sides compute the same values.")
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".refusal")).to_contain_text("Not run.")
    expect(result.locator(".badge")).to_have_text("not run")


def test_a_lost_connection_is_said_and_the_code_is_kept(
        browser: Browser, live_server: LiveServer) -> None:
    with watched_page(browser, 1360, 900, refused=(0,)) as page:
        lost_connection(page, live_server)


def lost_connection(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nstill_here = 1\n")
    page.route(re.compile(r".*/run/pytorch$"), lambda route: route.abort())
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".refusal")).to_contain_text("No answer from the server")
    expect(page.locator(f"{SUM} .side.pytorch .cm-content")).to_contain_text("still_here = 1")


def test_a_side_that_raised_is_named_with_a_tensorflow_name_hint(
        page: Page, live_server: LiveServer, shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nextra = torch.reduce_sum(x)\n")
    page.locator(f"{SUM} button[data-run=both]").click()
    verdict = page.locator("#verdict-sum-along-an-axis")
    expect(verdict.locator(".verdict-line")).to_contain_text(
        re.compile(r"PyTorch raised AttributeError at line \d+: fix it, then compare\."),
        timeout=RUN_S)
    expect(verdict).not_to_contain_text("The two sides differ")
    # the side that didn't run keeps its row in the chart, saying why
    expect(verdict.locator("svg.timing-chart .bar")).to_have_count(1)
    expect(verdict.locator("svg.timing-chart .bar-missing")).to_contain_text(
        "raised AttributeError")
    hint = page.locator("#result-sum-along-an-axis-pytorch .did-you-mean")
    expect(hint).to_contain_text("Did you mean torch.sum?")
    page.locator(SUM).screenshot(path=shots / "named-crash.png")
    hint.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/names#tf-reduce-sum$"))
    expect(page.locator("#tf-reduce-sum")).to_contain_text("torch.sum")


def test_library_warnings_are_folded_apart_and_server_paths_are_not_shown(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nimport warnings\nwarnings.warn_explicit('an old way', FutureWarning, "
                      "torch.__file__, 7)\n")
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    warnings = result.locator("details.warnings")
    expect(warnings.locator("summary")).to_have_text("1 warning from the libraries",
                                                     timeout=RUN_S)
    expect(warnings).not_to_have_attribute("open", "")
    expect(result.locator("pre.stderr")).to_have_count(0)  # nothing else, nothing amber
    expect(result.locator(".badge")).to_have_text("ran")
    assert str(ROOT) not in result.inner_html()
    expect(warnings.locator("pre")).to_contain_text(
        "torch/__init__.py:7: FutureWarning: an old way", use_inner_text=False)


def test_the_values_table_says_what_it_leaves_out(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nfor i in range(45):\n    globals()[f'v{i:02d}'] = torch.ones(1) * i\n")
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".values-more")).to_contain_text(
        "The first 40 names are shown; 9 more are not.", timeout=RUN_S)


def test_long_lines_wrap_and_tables_stay_in_their_cards_on_a_phone(
        browser: Browser, live_server: LiveServer, shots: Path) -> None:
    with watched_page(browser, 390, 844) as phone:
        phone.goto(live_server.url + LESSON)
        comment = "# " + "a long trailing comment that goes on " * 4 + "END"
        phone.locator(f"{SUM} .side.pytorch .cm-content").click()
        phone.keyboard.press("Control+End")
        phone.keyboard.type("\ny = total  " + comment + "\n")
        end = phone.locator(f"{SUM} .side.pytorch .cm-line", has_text="END")
        box, editor = end.bounding_box(), phone.locator(
            f"{SUM} .side.pytorch .cm-editor").bounding_box()
        assert box and editor and box["x"] + box["width"] <= editor["x"] + editor["width"] + 1
        assert box["height"] > 30, "the long line wraps onto more lines"
        verdict = phone.locator("#verdict-sum-along-an-axis")
        phone.locator(f"{SUM} button[data-run=both]").click()
        # done, matching, and not a precomputed verdict made stale by the edit
        expect(verdict).to_have_class(re.compile(r"state-done match$"), timeout=RUN_S)
        wide = phone.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, "nothing spills sideways out of the page"
        phone.locator(SUM).screenshot(path=shots / "phone-step.png")


def test_time_both_shows_the_steady_state_apart_from_the_first_call_in_the_timing_tab(
        page: Page, live_server: LiveServer, shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    page.locator(f"{SUM} .timing-button").click()
    step = page.locator(SUM)
    expect(step).to_have_attribute("data-tab", "timing")
    verdict = page.locator("#verdict-sum-along-an-axis")
    expect(verdict.locator("figcaption")).to_contain_text("Steady state, both frameworks: median "
                                                          "of 9 warm runs", timeout=RUN_S)
    facts = page.locator("#result-sum-along-an-axis-pytorch .timing-facts")
    expect(facts).to_contain_text("steady state")
    expect(facts).to_contain_text("first call")
    # one chart for both sides, and every label inside it
    expect(step.locator(".panel-timing svg.timing-chart")).to_have_count(0)
    chart = verdict.locator("svg.timing-chart")
    right = chart.bounding_box()
    for text in chart.locator("text.bar-value").all():
        box = text.bounding_box()
        assert right and box and box["x"] + box["width"] <= right["x"] + right["width"] + 1
    step.screenshot(path=shots / "timing.png")


def test_a_compiling_step_says_its_one_run_time_includes_compiling(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nf = torch.compile(lambda v: v * 2, backend='eager')\ntwice = f(x)\n")
    page.locator(f"{SUM} button[data-run=both]").click()
    caption = page.locator("#verdict-sum-along-an-axis figcaption")
    expect(caption).to_contain_text("One run, first call: compiling or tracing included.",
                                    timeout=RUN_S)


def test_a_long_run_shows_its_time_against_the_limit_and_its_result_is_pushed(
        page: Page, live_server: LiveServer) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/jobs/" in r.url else None)
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nimport time\ntime.sleep(2.5)\n")
    page.locator(f"{SUM} .side.pytorch button[data-run=pytorch]").click()
    result = page.locator("#result-sum-along-an-axis-pytorch")
    expect(result.locator(".elapsed")).to_have_text(re.compile(r"^[12] s of 10 s$"))
    expect(result.locator(".badge")).to_have_text("ran", timeout=RUN_S)
    streams = [u for u in asked if u.endswith("/events")]
    polls = [u for u in asked if not u.endswith("/events")]
    assert len(streams) == 1 and polls == [], asked


def test_a_slow_pair_pushes_the_verdict_and_both_panels(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nimport time\ntime.sleep(1.5)\n")
    page.locator(f"{SUM} button[data-run=both]").click()
    verdict = page.locator("#verdict-sum-along-an-axis")
    expect(verdict.locator(".elapsed")).to_contain_text("s of 10 s")
    expect(verdict).to_have_class(re.compile(r"state-done match$"), timeout=RUN_S)
    for side in ("tensorflow", "pytorch"):
        panel = page.locator(f"#result-sum-along-an-axis-{side}")
        expect(panel.locator(".badge")).to_have_text("ran")
        expect(panel).not_to_have_class(re.compile("is-stale|state-pending"))


def test_a_shared_link_shows_its_notice_on_its_step_with_its_output(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    type_at_end(page, "\nshared_value = total * 3\n")
    page.locator(f"{SUM} button:has-text('Share')").click()
    link = page.locator(f"{SUM} .share input.share-url").input_value()
    other = page.context.browser.new_context()  # someone else, without this browser's drafts
    try:
        theirs = other.new_page()
        theirs.goto(link)
        step = theirs.locator(SUM)
        expect(step.locator(".shared-notice")).to_contain_text("A shared version.")
        expect(step.locator(".side.pytorch .cm-content")).to_contain_text("shared_value = total")
        values = theirs.locator("#result-sum-along-an-axis-pytorch table.values")
        expect(values).to_contain_text("shared_value", timeout=RUN_S)
    finally:
        other.close()


RESHAPE = "#step-reshape-to-a-column"


def test_an_exercise_step_keeps_its_example_and_checks_in_its_own_editor(
        page: Page, live_server: LiveServer, shots: Path) -> None:
    page.goto(live_server.url + LESSON)
    step = page.locator(RESHAPE)
    # the worked pair, runnable as a pair
    expect(step.locator(".columns .side.pytorch .cm-content")).to_contain_text(
        "col = x.reshape(-1, 1)")
    exercise = step.locator(".exercise-side .cm-content")
    expect(exercise).to_contain_text("col = x  # make this a (6, 1) column")
    step.locator("button[data-run=both]").click()
    expect(page.locator("#verdict-reshape-to-a-column")).to_have_class(
        re.compile(r"state-done match$"), timeout=RUN_S)
    # the starter's check shows what it made next to what was expected
    step.locator("button[data-run=exercise]").click()
    feedback = page.locator("#exercise-reshape-to-a-column")
    expect(feedback.locator(".check-line")).to_contain_text("Not yet.", timeout=RUN_S)
    row = feedback.locator(".expected-table tbody tr")
    expect(row.locator("td").nth(0)).to_contain_text("[6]")
    expect(row.locator("td").nth(1)).to_contain_text("[6, 1]")
    expect(row.locator("td").nth(1).locator("pre.preview")).to_contain_text("[[0.]")
    step.screenshot(path=shots / "exercise-own-editor.png")
    # the pair above is untouched by the exercise
    expect(page.locator("#result-reshape-to-a-column-pytorch .badge")).to_have_text("ran")


def test_a_class_learners_draft_reaches_the_server_and_their_other_device(
        browser: Browser, live_server: LiveServer) -> None:
    made = httpx.post(f"{live_server.url}/api/classes", timeout=30,
                      json={"pack": "example", "title": "Drafts"})
    assert made.status_code == 201, made.text
    with watched_page(browser, 1280, 800) as learner:
        learner.goto(made.json()["join_url"])
        learner.get_by_label("Your name").fill("Dana")
        learner.get_by_role("button", name="Join the class").click()
        expect(learner).to_have_url(re.compile(LESSON))
        type_at_end(learner, "\non_the_server = 1\n")
        with learner.expect_request(re.compile(r"/draft$")) as sent:
            pass  # sent a moment after typing stops
        assert sent.value.method == "POST"
        learner.wait_for_timeout(300)  # its answer
        laptop = browser.new_context()  # the same learner elsewhere: cookies, no storage
        try:
            laptop.add_cookies(learner.context.cookies())
            tab = laptop.new_page()
            tab.goto(live_server.url + LESSON)
            expect(tab.locator(f"{SUM} .side.pytorch .cm-content")).to_contain_text(
                "on_the_server = 1")
        finally:
            laptop.close()


def test_an_exercise_that_raises_names_its_line_in_its_own_editor(
        page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + LESSON)
    step = page.locator(RESHAPE)
    step.locator(".exercise-side .cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("col = torch.reduce_sum(x)\n")
    step.locator("button[data-run=exercise]").click()
    feedback = page.locator("#exercise-reshape-to-a-column")
    expect(feedback.locator(".error-title")).to_contain_text("AttributeError at line 5",
                                                             timeout=RUN_S)
    expect(feedback.locator(".did-you-mean")).to_contain_text("Did you mean torch.sum?")
    marked = step.locator(".exercise-side .cm-error-line")
    expect(marked).to_have_text("col = torch.reduce_sum(x)")
    expect(step.locator(".columns .cm-error-line")).to_have_count(0)  # the worked pair is fine
