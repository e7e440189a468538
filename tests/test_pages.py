"""The learner's pages through a real server, real pool and the real lesson packs."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer

LESSON = "example-layers"
STEP = "/lessons/example-layers/steps"
SUM_TF = """import tensorflow as tf

x = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
total = tf.reduce_sum(x, axis=0)
mean = tf.reduce_mean(x, axis=1, keepdims=True)
"""
SUM_PT = """import torch

x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
total = torch.sum(x, dim=0)
mean = torch.mean(x, dim=1, keepdim=True)
"""
JOB = re.compile(r'data-wait="(/jobs/[^"]+)"')


class Learner:
    """A browser without JavaScript that speaks htmx's headers: one cookie jar."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=90)
        page = self.http.get(f"/lessons/{LESSON}")
        self.csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    def post(self, path: str, data: dict[str, str], *, htmx: bool = True) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf} if htmx else {}
        if not htmx:
            data = {**data, "csrf_token": self.csrf}
        response = self.http.post(path, data=data, headers=headers)
        # A whole page is finished as it comes (the server waits for the run); the
        # pending partials in it are other steps' outputs still being precomputed.
        return self.finish(response) if htmx else response

    def finish(self, response: httpx.Response) -> httpx.Response:
        """Follow pending partials the way htmx does, until the run is done."""
        deadline = time.monotonic() + 120
        while (job := JOB.search(response.text)) and time.monotonic() < deadline:
            time.sleep(0.3)
            response = self.http.get(job.group(1), headers={"HX-Request": "true"})
        return response


@pytest.fixture
def learner(live_server: LiveServer) -> Iterator[Learner]:
    person = Learner(live_server.url)
    yield person
    person.http.close()


def test_catalog_lists_packs_and_lessons(live_server: LiveServer) -> None:
    page = httpx.get(live_server.url + "/")
    assert page.status_code == 200
    assert "Reductions, dense layers and shapes" in page.text
    assert 'href="/lessons/example-layers"' in page.text


def test_every_page_links_learners_instructors_authors_and_porters_to_their_pages(
        live_server: LiveServer) -> None:
    for start in ("/", f"/lessons/{LESSON}"):
        header = httpx.get(live_server.url + start).text.split("</header>")[0]
        links = dict((text, href) for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>',
                                                                header))
        assert links == {"Lessons": "/", "Join a class": "/join", "Teach": "/classes/new",
                         "Lesson packs": "/packs", "Port a model": "/port"}
        for href in links.values():
            assert httpx.get(live_server.url + href).status_code == 200


def test_every_page_has_a_csp_without_inline_script_and_sets_cookies(
        live_server: LiveServer) -> None:
    page = httpx.get(f"{live_server.url}/lessons/{LESSON}")
    csp = page.headers["content-security-policy"]
    script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert script.strip() == "script-src 'self'"
    styles = next(d for d in csp.split(";") if d.strip().startswith("style-src "))
    assert "unsafe-inline" not in script + styles and "unsafe-eval" not in csp
    assert "style-src-attr 'unsafe-inline'" in csp  # attributes only, never elements
    assert "<script>" not in page.text  # every script is a file
    assert {"sbs_learner", "sbs_csrf"} <= set(page.cookies)
    assert "HttpOnly" in page.headers["set-cookie"]


def test_lesson_page_shows_both_snippets_and_hides_the_solution(learner: Learner) -> None:
    page = learner.http.get(f"/lessons/{LESSON}").text
    assert page.count('class="code"') == 7  # three steps, two editors each, one exercise's
    assert 'id="code-sum-along-an-axis-tensorflow"' in page
    assert "tf.reduce_sum(x, axis=0)" in page and "torch.sum(x, dim=0)" in page
    exercise = page.split('id="code-reshape-to-a-column-exercise"')[1].split("</textarea>")[0]
    assert "col = x  # make this a (6, 1) column" in exercise  # the starter, not the answer
    assert 'id="solution-reshape-to-a-column"' not in page
    assert "Reference solution" not in page


def test_a_step_seen_on_screen_is_recorded_once(learner: Learner) -> None:
    page = learner.http.get(f"/lessons/{LESSON}").text
    assert f'hx-post="{STEP}/a-dense-layer/viewed" hx-trigger="intersect once"' in page
    assert learner.post(f"{STEP}/a-dense-layer/viewed", {}).status_code == 204
    page = learner.http.get(f"/lessons/{LESSON}").text
    assert f"{STEP}/a-dense-layer/viewed" not in page
    assert learner.post(f"{STEP}/nope/viewed", {}).status_code == 404


def test_unknown_lesson_is_404(live_server: LiveServer) -> None:
    assert httpx.get(f"{live_server.url}/lessons/nope").status_code == 404


def test_state_changing_posts_need_the_csrf_token(learner: Learner) -> None:
    url = f"{STEP}/sum-along-an-axis/run/pytorch"
    missing = learner.http.post(url, data={"pytorch": "x = 1"}, headers={"HX-Request": "true"})
    assert missing.status_code == 403
    wrong = learner.http.post(url, data={"pytorch": "x = 1"},
                              headers={"HX-Request": "true", "X-CSRF-Token": "a" * 32})
    assert wrong.status_code == 403
    assert learner.post(url, {"pytorch": "x = 1"}).status_code == 200


def test_output_is_escaped_so_a_printed_script_stays_text(learner: Learner) -> None:
    code = "print('<script>alert(1)</script>')\nx = '<img src=x onerror=alert(2)>'\n"
    fragment = learner.post(f"{STEP}/sum-along-an-axis/run/pytorch", {"pytorch": code}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    assert "<script>" not in fragment and "<img src=x" not in fragment


def test_an_edited_snippet_runs_live_and_returns_a_fragment(learner: Learner) -> None:
    code = SUM_PT + "print('sum is', total.tolist())\n"
    fragment = learner.post(f"{STEP}/sum-along-an-axis/run/pytorch", {"pytorch": code}).text
    assert fragment.lstrip().startswith('<div class="result pytorch state-done status-ok"')
    assert "sum is [5.0, 7.0, 9.0]" in fragment
    assert "precomputed" not in fragment
    assert "<html" not in fragment


def test_without_htmx_a_run_answers_with_the_whole_page(learner: Learner) -> None:
    code = SUM_PT + "print('whole page')\n"
    page = learner.post(f"{STEP}/sum-along-an-axis/run/pytorch", {"pytorch": code}, htmx=False)
    assert page.text.startswith("<!doctype html>")
    assert "whole page" in page.text


def test_an_error_names_its_line(learner: Learner) -> None:
    code = "import torch\n\nx = torch.ones(2)\ny = x @ torch.ones(3)\n"
    fragment = learner.post(f"{STEP}/sum-along-an-axis/run/pytorch", {"pytorch": code}).text
    assert 'data-error-line="4"' in fragment
    assert "RuntimeError" in fragment and "line 4" in fragment


def test_unedited_code_answers_from_the_cache(learner: Learner) -> None:
    url = f"{STEP}/sum-along-an-axis/run/tensorflow"
    learner.post(url, {"tensorflow": SUM_TF})  # computes it if the page had not yet
    t0 = time.perf_counter()
    fragment = learner.post(url, {"tensorflow": SUM_TF}).text
    assert time.perf_counter() - t0 < 0.25
    assert "precomputed" in fragment and "status-ok" in fragment


def test_run_both_shows_the_verdict_per_name(learner: Learner) -> None:
    response = learner.post(f"{STEP}/sum-along-an-axis/pair",
                            {"tensorflow": SUM_TF, "pytorch": SUM_PT}).text
    assert 'class="verdict state-done match"' in response
    assert "Both sides compute the same values." in response
    assert response.count('hx-swap-oob="true"') == 2  # both result panels come along
    assert "<code>total</code>" in response and "<code>mean</code>" in response
    wrong = SUM_PT.replace("dim=0", "dim=1")
    response = learner.post(f"{STEP}/sum-along-an-axis/pair",
                            {"tensorflow": SUM_TF, "pytorch": wrong}).text
    assert "The two sides differ." in response and "shapes differ" in response


def test_timing_both_sides_draws_bars_with_whiskers(learner: Learner) -> None:
    response = learner.post(f"{STEP}/sum-along-an-axis/time",
                            {"tensorflow": SUM_TF, "pytorch": SUM_PT}).text
    verdict = response.split('hx-swap-oob="true"')[0]
    assert verdict.count('class="whisker"') == 6  # a line and two caps per side
    assert len(re.findall(r'class="bar-value"[^>]*>[^<]*n=10', verdict)) == 2
    assert 'class="bar-device"' in verdict


def test_the_diff_marks_the_words_that_differ(learner: Learner) -> None:
    fragment = learner.post(f"{STEP}/sum-along-an-axis/diff",
                            {"tensorflow": SUM_TF, "pytorch": SUM_PT}).text
    assert '<mark class="hl-n">reduce_sum</mark>' in fragment
    assert '<mark class="hl-n">dim</mark>' in fragment
    assert '<span class="hl-n">total</span>' in fragment  # the same on both sides


def test_an_exercise_passes_after_the_fix_and_the_pass_is_saved(learner: Learner) -> None:
    base = f"{STEP}/reshape-to-a-column"
    hint = learner.http.get(f"{base}/exercise?hints=1", headers={"HX-Request": "true"}).text
    assert "Hint 1" in hint and "Hint 2" not in hint
    assert "Show the solution" not in hint  # no attempt yet
    starter = "import torch\n\nx = torch.arange(6.0)\ncol = x\n"
    failed = learner.post(f"{base}/check", {"exercise": starter}).text  # its own editor
    assert "Not yet." in failed and "shapes differ" in failed
    solution = learner.http.get(f"{base}/exercise?hints=0&solution=1",
                                headers={"HX-Request": "true"}).text
    assert "Reference solution" in solution  # shown after an attempt
    fixed = starter.replace("col = x", "col = x.reshape(-1, 1)")
    passed = learner.post(f"{base}/check", {"exercise": fixed}).text
    assert "Passed" in passed
    catalog = learner.http.get("/").text
    assert "1/1 exercise passed" in catalog
    assert "Continue: Reductions, dense layers and shapes" in catalog


def test_a_shared_pair_opens_with_its_code(learner: Learner, live_server: LiveServer) -> None:
    edited = SUM_PT + "# shared with a friend\n"
    fragment = learner.post(f"{STEP}/sum-along-an-axis/share",
                            {"tensorflow": SUM_TF, "pytorch": edited}).text
    link = re.search(r'value="(http[^"]+/s/[^"]+)"', fragment).group(1)  # type: ignore[union-attr]
    friend = httpx.get(link, follow_redirects=True)
    assert friend.status_code == 200
    assert "# shared with a friend" in friend.text
    # the notice sits on the shared step, which runs as it opens
    assert 'data-autorun>' in friend.text and "A shared version." in friend.text
    assert httpx.get(f"{live_server.url}/s/nope").status_code == 404


def test_oversized_code_is_refused(learner: Learner) -> None:
    response = learner.post(f"{STEP}/sum-along-an-axis/run/pytorch",
                            {"pytorch": "x = 1\n" * 20000})
    assert response.status_code == 422


def test_a_full_queue_shows_busy_with_the_retry_time() -> None:
    import asyncio
    import concurrent.futures

    from app.packs.loader import load_pack
    from app.pipeline.jobs import Jobs
    from app.pipeline.work import StepSide
    from app.settings import ROOT
    from app.web import outcome_views
    from app.web.render import templates
    from app.web.stepview import build_step
    from sandbox.fairqueue import Client
    from sandbox.pool import QueueFull

    lesson = load_pack(ROOT / "lessons" / "example").lessons[0]
    view = build_step(lesson, lesson.steps[0])

    async def full() -> None:
        raise QueueFull(7)

    async def go() -> str:
        jobs = Jobs()
        job = jobs.start(full(), client=Client("c", "10.0.0.1"),
                         meta=StepSide(lesson, lesson.steps[0], "pytorch", ""))
        await jobs.settle(job, 1)
        outcome_views.side_from_job(view.side("pytorch"), job, None)
        template = templates().env.get_template("partials/result.html")
        return template.render(sv=view, side=view.side("pytorch"))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the browser tests hold a loop here
        html = pool.submit(asyncio.run, go()).result()
    assert 'data-state="busy"' in html
    assert "The server is busy. Try again in 7 s." in html


def test_timing_chart_scales_both_sides_to_one_axis() -> None:
    from app.web.views import timing_chart
    from sandbox.protocol import Timings

    tf = Timings(wall_ms=2.0, cpu_ms=2.0, runs=10, first_ms=90.0, median_ms=2.0,
                 p25_ms=1.5, p75_ms=2.4)
    pt = Timings(wall_ms=0.5, cpu_ms=0.5)
    chart = timing_chart([("TensorFlow", "tensorflow", "cpu", tf), ("PyTorch", "pytorch", "", pt)])
    first, second = chart.bars
    assert first.width == pytest.approx(4 * second.width)  # same scale for both
    assert first.lo is not None and first.hi is not None and first.lo < first.width < first.hi
    assert second.lo is None  # one run: no whiskers
    assert first.first_off_chart and first.first == pytest.approx(chart.plot)
    assert second.device == second.device_short == "cpu"
    assert [t for _, t in chart.ticks] == ["0", "1 ms", "2 ms", "3 ms", "4 ms", "5 ms"]


def test_long_device_names_are_shortened_to_fit_left_of_the_bars() -> None:
    from app.web.views import timing_chart
    from sandbox.protocol import Timings

    one = Timings(wall_ms=1.0, cpu_ms=1.0)
    rows = [("TensorFlow", "tensorflow", "Intel(R) Xeon(R) Processor", one),
            ("PyTorch", "pytorch", "AMD EPYC 7763 64-Core Processor", one)]
    intel, amd = timing_chart(rows).bars
    assert intel.device_short == "Intel Xeon Processor"
    assert amd.device_short == "AMD EPYC 7763 64-Core…" and len(amd.device_short) <= 22
    assert amd.device == "AMD EPYC 7763 64-Core Processor"  # in full on hover


def test_a_class_burst_of_unedited_steps_runs_nothing(live_server: LiveServer) -> None:
    url = f"{STEP}/sum-along-an-axis/run/tensorflow"
    first = Learner(live_server.url)
    first.post(url, {"tensorflow": SUM_TF})  # computed once, if no page view had yet
    health = httpx.get(f"{live_server.url}/api/health").json()
    for _ in range(200):  # lesson views precompute the other steps in the background
        time.sleep(0.1)
        now = httpx.get(f"{live_server.url}/api/health").json()
        quiet = not now["pool"]["busy"] and not now["pool"]["queued"]
        if quiet and now["pool"]["runs_started"] == health["pool"]["runs_started"]:
            break
        health = now
    before = health["pool"]["runs_started"]
    learners = [Learner(live_server.url) for _ in range(30)]
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        fragments = list(pool.map(lambda person: person.post(url, {"tensorflow": SUM_TF}).text,
                                  learners))
    assert all("precomputed" in f and "status-ok" in f for f in fragments)
    after = httpx.get(f"{live_server.url}/api/health").json()["pool"]["runs_started"]
    assert after == before
    for person in [first, *learners]:
        person.http.close()
