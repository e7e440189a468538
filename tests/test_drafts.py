"""A class learner's drafts are kept on the server and follow them to another device."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.test_class_pages import csrf, scenario
from tests.test_classes_api import QuickPool

STEP = "/lessons/example-layers/steps/sum-along-an-axis"
EDITED = "import torch\n\nx = torch.ones(3)\ntotal = x.sum()  # my draft\n"


async def seated_learner(http: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    """A learner seated in a new class, and its dashboard (`http` is the instructor)."""
    token = await csrf(http, "/classes/new")
    made = await http.post("/classes/new", data={
        "csrf_token": token, "title": "Drafts", "pack": "example", "lessons": "example-layers"})
    assert made.status_code == 303, made.text
    code = made.headers["location"].split("/")[2]
    learner = httpx.AsyncClient(transport=http._transport, base_url="http://test")
    token = await csrf(learner, f"/join/{code}")
    joined = await learner.post(f"/join/{code}", data={"csrf_token": token, "name": "Eve"})
    assert joined.status_code == 303, joined.text
    return learner, made.headers["location"]


def test_a_class_learners_draft_follows_them_and_reset_drops_it(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        learner, dashboard_url = await seated_learner(http)
        try:
            token = await csrf(learner, "/lessons/example-layers")
            headers = {"X-CSRF-Token": token}
            saved = await learner.post(f"{STEP}/draft", data={"side": "pytorch", "code": EDITED},
                                       headers=headers)
            assert saved.status_code == 204, saved.text
            # the instructor's "open a learner's code" shows it, run or not
            dashboard = (await http.get(dashboard_url)).text
            panel = re.search(r'href="(/classes/[^"]+/learners/[^"]+)"', dashboard)
            assert panel, "the roster links each learner's code"
            code_page = (await http.get(panel.group(1))).text
            assert "Typing now" in code_page and "total = x.sum()  # my draft" in code_page
            # another device: the same learner's cookies, none of this browser's storage
            other = httpx.AsyncClient(transport=http._transport, base_url="http://test",
                                      cookies=learner.cookies)
            async with other:
                page = (await other.get("/lessons/example-layers")).text
                assert "total = x.sum()  # my draft" in page
                original = page.split('data-original="')[1].split('"')[0]  # the TF side's
                assert "my draft" not in original
                # back to the lesson's code: the draft is gone
                lesson_pt = ("import torch\n\nx = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])"
                             "\ntotal = torch.sum(x, dim=0)\nmean = torch.mean(x, dim=1, "
                             "keepdim=True)\n")
                reset = await learner.post(f"{STEP}/draft", headers=headers,
                                           data={"side": "pytorch", "code": lesson_pt})
                assert reset.status_code == 204
                assert "my draft" not in (await other.get("/lessons/example-layers")).text
        finally:
            await learner.aclose()

    scenario(tmp_path, go)


def test_drafts_are_refused_clearly_outside_a_class_and_when_malformed(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        token = await csrf(http, "/lessons/example-layers")
        alone = await http.post(f"{STEP}/draft", data={"side": "pytorch", "code": EDITED},
                                headers={"X-CSRF-Token": token})
        assert alone.status_code == 403 and "this browser keeps yours" in alone.text
        learner, _ = await seated_learner(http)
        try:
            headers = {"X-CSRF-Token": await csrf(learner, "/lessons/example-layers")}
            for data, said in (({"side": "cuda", "code": "x = 1"}, "needs a side"),
                               ({"side": "pytorch", "code": "x = 1\0"}, "pytorch code"),
                               ({"side": "pytorch", "code": "#" * 70_000}, "pytorch code"),
                               ({"side": "exercise", "code": "x = 1"}, "no exercise")):
                refused = await learner.post(f"{STEP}/draft", data=data, headers=headers)
                assert refused.status_code == 422 and said in refused.text, refused.text
        finally:
            await learner.aclose()

    scenario(tmp_path, go)
