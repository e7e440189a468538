"""The instructor's pages without a browser: the projector view, the classes a browser
teaches, the way back from a lesson, and the form that starts a class."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.test_class_pages import csrf
from tests.test_classes_api import QuickPool, bearer, join, new_class, scenario

FAILING = {"framework": "pytorch", "code": "raise ValueError('boom')"}


def test_the_projector_shows_the_room_what_to_join_and_nothing_private(
        tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http, title="Tuesday <b>class</b>")
        code, teacher = made["code"], made["instructor_token"]
        zed = await join(http, code, "Zed Secretname")
        await http.post("/api/runs", json=FAILING, headers=bearer(zed))
        assert (await http.get(f"/classes/{code}/projector")).status_code == 401
        jar = {f"sbs_teach_{code}": teacher}
        page = await http.get(f"/classes/{code}/projector", cookies=jar)
        assert page.status_code == 200
        text = page.text
        assert "Tuesday &lt;b&gt;class&lt;/b&gt;" in text
        assert f'<strong class="projector-code">{code}</strong>' in text
        assert made["join_url"] in text and f"/classes/{code}/qr.svg" in text
        assert "Example pack, version 1.0.0" in text
        assert "We start with <strong>Reductions, dense layers and shapes</strong>" in text
        assert f'sse-connect="/classes/{code}/projector/live"' in text
        for private in ("Zed", "Secretname", "ValueError", "boom", teacher, "#key=",
                        "instructor link", "Remove"):
            assert private not in text, private
        await http.post(f"/api/classes/{code}/follow", headers=bearer(teacher),
                        json={"lesson": "example-layers", "step": "a-dense-layer"})
        page = await http.get(f"/classes/{code}/projector", cookies=jar)
        assert re.search(r"Now: <strong>\d\. A dense layer</strong>", page.text), page.text
        await http.post(f"/api/classes/{code}/end", headers=bearer(teacher))
        ended = await http.get(f"/classes/{code}/projector", cookies=jar)
        assert "This class has ended" in ended.text and "projector-code" not in ended.text
        stranger = await http.get(f"/classes/{code}/projector",
                                  cookies={f"sbs_teach_{code}": "x" * 22})
        assert stranger.status_code == 403
        assert (await http.get(f"/classes/{code}/projector/live")).status_code == 401

    scenario(tmp_path, go)


def test_the_dashboard_keeps_the_private_link_in_its_own_panel(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code = made["code"]
        page = await http.get(f"/classes/{code}/dashboard",
                              cookies={f"sbs_teach_{code}": made["instructor_token"]})
        panel = page.text.split('class="private-panel"')[1].split("</section>")[0]
        assert "Keep this private" in panel and made["instructor_token"] in panel
        assert page.text.count(made["instructor_token"]) == 1  # nowhere else on the page
        assert f'href="/classes/{code}/projector"' in page.text
        assert 'href="/classes"' in page.text

    scenario(tmp_path, go)


def test_my_classes_lists_what_this_browser_teaches_and_nothing_else(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        empty = await http.get("/classes")
        assert empty.status_code == 200 and "teaches no class yet" in empty.text
        token = await csrf(http, "/classes/new")
        for title in ("Monday <i>one</i>", "Tuesday two"):
            made = await http.post("/classes/new", data={
                "csrf_token": token, "title": title, "pack": "example"})
            assert made.status_code == 303
        theirs = await new_class(http, title="Someone else's")
        http.cookies.set(f"sbs_teach_{theirs['code']}", "forged-" + "x" * 20)
        http.cookies.set("sbs_teach_NOPE12", "y" * 22)
        mine = await http.get("/classes")
        codes = re.findall(r'<tr data-code="([A-Z0-9]+)">', mine.text)
        assert len(codes) == 2 and theirs["code"] not in codes
        assert mine.text.index("Tuesday two") < mine.text.index("Monday &lt;i&gt;one")
        assert "Someone else" not in mine.text
        for code in codes:
            assert f'href="/classes/{code}/dashboard"' in mine.text
            assert f'href="/classes/{code}/projector"' in mine.text

    scenario(tmp_path, go)


def test_a_lesson_page_takes_its_instructor_back_to_the_dashboard(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        assert "teaching-banner" not in (await http.get("/lessons/example-layers")).text
        made = await new_class(http, title="Reading ahead")
        code = made["code"]
        http.cookies.set(f"sbs_teach_{code}", made["instructor_token"])
        lesson = await http.get("/lessons/example-layers")
        banner = lesson.text.split('id="teaching-banner"')[1].split("</section>")[0]
        assert "Reading ahead" in banner and f'href="/classes/{code}/dashboard"' in banner
        await http.post(f"/api/classes/{code}/end", headers=bearer(made["instructor_token"]))
        assert "teaching-banner" not in (await http.get("/lessons/example-layers")).text

    scenario(tmp_path, go)


def test_the_new_class_form_keeps_what_was_typed_and_says_what_is_wrong(
        tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        form = await http.get("/classes/new")
        assert form.status_code == 200
        # one entry per pack, and a pack's lessons are ticked under its own entry
        assert form.text.count('name="pack"') == 2
        token = await csrf(http, "/classes/new")
        empty_title = await http.post("/classes/new", data={
            "csrf_token": token, "title": "  ", "pack": "tf-to-torch",
            "lessons": ["tensors", "example-layers"]})
        assert empty_title.status_code == 422
        assert "Give the class a title." in empty_title.text
        kept = empty_title.text
        assert re.search(r'value="tf-to-torch" checked', kept)
        assert not re.search(r'value="example" checked', kept)
        ticked = re.findall(r'name="lessons" value="([\w-]+)" checked', kept)
        assert ticked == ["tensors"], ticked  # another pack's tick is not kept
        too_long = await http.post("/classes/new", data={
            "csrf_token": token, "title": "T" * 300, "pack": "example"})
        assert too_long.status_code == 422 and "The title is too long" in too_long.text
        assert 'value="' + "T" * 300 + '"' in too_long.text
        no_pack = await http.post("/classes/new", data={"csrf_token": token,
                                                       "title": "Kept title"})
        assert no_pack.status_code == 422 and "Choose one of the packs" in no_pack.text
        assert 'value="Kept title"' in no_pack.text
        unknown = await http.post("/classes/new", data={"csrf_token": token, "title": "X",
                                                       "pack": "nope--v7"})
        assert unknown.status_code == 422 and "Choose one of the packs" in unknown.text
        made = await http.post("/classes/new", data={
            "csrf_token": token, "title": "Two lessons", "pack": "tf-to-torch",
            "lessons": ["example-layers", "tensors"]})
        assert made.status_code == 303, made.text
        code = made.headers["location"].split("/")[2]
        state = (await http.get(f"/api/classes/{code}", headers=bearer(
            made.cookies[f"sbs_teach_{code}"]))).json()
        assert state["lessons"] == ["tensors"]

    scenario(tmp_path, go)
