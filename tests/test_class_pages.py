"""A live class's pages without a browser: join by form, instructor sign-in, escaping, pause."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx

from tests.test_classes_api import QuickPool, bearer, serve

EVIL = '<img src=x onerror="alert(1)">Mallory'
CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


def scenario(tmp_path: Path, go: Any) -> None:
    async def main() -> None:
        async with serve(tmp_path) as (http, pool):
            await go(http, pool)

    asyncio.run(main())


async def csrf(http: httpx.AsyncClient, path: str) -> str:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


def test_an_instructor_starts_a_class_and_a_learner_joins_by_form(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        token = await csrf(http, "/classes/new")
        made = await http.post("/classes/new", data={
            "csrf_token": token, "title": "Tuesday <b>TF</b>", "pack": "example",
            "lessons": "example-layers"})
        assert made.status_code == 303
        dashboard = made.headers["location"]
        code = dashboard.split("/")[2]
        teacher_cookie = made.cookies[f"sbs_teach_{code}"]
        page = await http.get(dashboard)
        assert page.status_code == 200
        assert "Tuesday &lt;b&gt;TF&lt;/b&gt;" in page.text and "<b>TF" not in page.text
        assert f'src="/classes/{code}/qr.svg"' in page.text
        assert 'sse-connect="/classes/' + code + '/live"' in page.text
        qr = await http.get(f"/classes/{code}/qr.svg")
        assert qr.headers["content-type"] == "image/svg+xml" and qr.text.startswith("<svg")

        learner = httpx.AsyncClient(transport=http._transport, base_url="http://test")
        async with learner:
            token = await csrf(learner, f"/join/{code.lower()}")
            bad = await learner.post(f"/join/{code}", data={"csrf_token": token, "name": " "})
            assert bad.status_code == 422 and "must not be empty" in bad.text
            joined = await learner.post(f"/join/{code}", data={"csrf_token": token,
                                                               "name": EVIL})
            assert joined.status_code == 303
            assert joined.headers["location"] == "http://test/lessons/example-layers"
            lesson = await learner.get("/lessons/example-layers")
            assert 'id="class-banner"' in lesson.text
            assert f'sse-connect="/classes/{code}/stream"' in lesson.text
            assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Mallory" in lesson.text
            assert EVIL not in lesson.text
            assert "vendor/htmx-ext-sse.min.js" in lesson.text
            no_csrf = await learner.post(f"/join/{code}", data={"name": "Sneaky"})
            assert no_csrf.status_code == 403

        page = await http.get(dashboard, cookies={f"sbs_teach_{code}": teacher_cookie})
        assert EVIL not in page.text and "&lt;img src=x" in page.text
        learner_id = re.search(r'data-learner="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        panel = await http.get(f"/classes/{code}/learners/{learner_id}",
                               headers={"HX-Request": "true"})
        assert panel.text.lstrip().startswith('<section class="learner-code"')
        assert EVIL not in panel.text

    scenario(tmp_path, go)


def test_the_private_link_signs_in_only_with_the_right_key(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = (await http.post("/api/classes", json={"pack": "example", "title": "T"})).json()
        code = made["code"]
        teach = made["instructor_url"].split("#")[0].removeprefix("http://test")
        token = await csrf(http, teach)
        wrong = await http.post(teach, data={"csrf_token": token, "key": "guess" * 5})
        assert wrong.status_code == 403 and "not the instructor token" in wrong.text
        assert (await http.get(f"/classes/{code}/dashboard")).status_code == 401
        right = await http.post(teach, data={"csrf_token": token,
                                             "key": made["instructor_token"]})
        assert right.status_code == 303
        assert right.headers["location"] == f"/classes/{code}/dashboard"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert (await http.get(f"/classes/{code}/dashboard")).status_code == 200

    scenario(tmp_path, go)


def test_a_paused_class_answers_the_run_button_with_the_pause(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = (await http.post("/api/classes", json={"pack": "example", "title": "T"})).json()
        code, teacher = made["code"], bearer(made["instructor_token"])
        joined = await http.post(f"/api/classes/{code}/join", json={"name": "Ana"})
        assert joined.status_code == 201
        token = await csrf(http, "/lessons/example-layers")  # the class cookie came with it
        await http.post(f"/api/classes/{code}/pause", headers=teacher)
        lesson = await http.get("/lessons/example-layers")
        assert 'data-paused="true"' in lesson.text
        assert "Runs are paused by the instructor." in lesson.text
        step = "/lessons/example-layers/steps/sum-along-an-axis"
        side = await http.post(f"{step}/run/pytorch", data={"pytorch": "x = 1"},
                               headers={"HX-Request": "true", "X-CSRF-Token": token})
        assert side.status_code == 200
        assert "PausedByInstructor" in side.text and "paused by the instructor" in side.text
        assert "status-rejected" in side.text
        both = await http.post(f"{step}/pair", data={"pytorch": "x = 1"},
                               headers={"HX-Request": "true", "X-CSRF-Token": token})
        assert both.text.count("PausedByInstructor") == 2
        await http.post(f"/api/classes/{code}/pause", json={"paused": False}, headers=teacher)
        ran = await http.post(f"{step}/run/pytorch", data={"pytorch": "x = 1"},
                              headers={"HX-Request": "true", "X-CSRF-Token": token})
        assert "status-ok" in ran.text
        roster = (await http.get(f"/api/classes/{code}/roster", headers=teacher)).json()
        assert roster[0]["runs"] == 1 and roster[0]["last_status"] == "ok"
        seen = (await http.get(f"/api/classes/{code}/learners/{roster[0]['id']}",
                               headers=teacher)).json()
        assert seen["pytorch"] == "x = 1" and seen["step"] == "sum-along-an-axis"

    scenario(tmp_path, go)


def test_the_dashboard_actions_need_the_instructor_and_the_csrf_token(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = (await http.post("/api/classes", json={"pack": "example", "title": "T"})).json()
        code = made["code"]
        jar = {f"sbs_teach_{code}": made["instructor_token"]}
        token = await csrf(http, "/join")
        no_csrf = await http.post(f"/classes/{code}/pause", data={"paused": "true"},
                                  cookies=jar)
        assert no_csrf.status_code == 403
        stranger = await http.post(f"/classes/{code}/pause",
                                   data={"paused": "true", "csrf_token": token})
        assert stranger.status_code == 401
        paused = await http.post(f"/classes/{code}/pause", cookies=jar,
                                 data={"paused": "true", "csrf_token": token},
                                 headers={"HX-Request": "true"})
        assert paused.status_code == 200 and "Resume runs" in paused.text
        message = await http.post(f"/classes/{code}/message", cookies=jar,
                                  data={"text": "<b>hi</b>", "csrf_token": token},
                                  headers={"HX-Request": "true"})
        assert message.status_code == 200
        followed = await http.post(f"/classes/{code}/follow", cookies=jar,
                                   data={"target": "example-layers/nope", "csrf_token": token},
                                   headers={"HX-Request": "true"})
        assert "not in this class" in followed.text
        state = (await http.get(f"/api/classes/{code}", headers=bearer(made["instructor_token"])
                                )).json()
        assert state["paused"] and state["message"] == "<b>hi</b>"

    scenario(tmp_path, go)
