"""The roster tells the truth: stuck is about the step a learner is on, two learners of one
name are told apart, and a browser that joined already is told so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.test_class_pages import csrf
from tests.test_classes_api import QuickPool, bearer, join, new_class, scenario

FAILING = {"framework": "pytorch", "code": "raise ValueError('boom')"}


async def roster_of(http: httpx.AsyncClient, made: dict[str, Any]) -> dict[str, Any]:
    got = await http.get(f"/api/classes/{made['code']}/roster",
                         headers=bearer(made["instructor_token"]))
    assert got.status_code == 200, got.text
    return {r["name"]: r for r in got.json()}


def test_the_stuck_flag_resets_when_the_learner_moves_on(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        joined = await http.post(f"/api/classes/{made['code']}/join", json={"name": "Ana"})
        token = joined.json()["student_token"]  # the client keeps the class cookie
        for _ in range(3):
            assert (await http.post("/api/runs", json=FAILING,
                                    headers=bearer(token))).status_code == 200
        assert (await roster_of(http, made))["Ana"]["stuck"]
        lesson = "/lessons/example-layers"
        moved = await http.post(f"{lesson}/steps/a-dense-layer/viewed", headers={
            "HX-Request": "true", "X-CSRF-Token": await csrf(http, lesson)})
        assert moved.status_code == 204
        ana = (await roster_of(http, made))["Ana"]
        assert ana["step"] == "a-dense-layer" and not ana["stuck"], ana
        # back on the same step, one more failure is one, not four
        assert (await http.post("/api/runs", json=FAILING,
                                headers=bearer(token))).status_code == 200
        assert not (await roster_of(http, made))["Ana"]["stuck"]

    scenario(tmp_path, go)


def test_two_learners_of_one_name_are_told_apart(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        for name in ("Eve", "eve", "Eve", "Eve (2)"):
            await join(http, made["code"], name)
        roster = await roster_of(http, made)
        assert set(roster) == {"Eve", "eve (2)", "Eve (3)", "Eve (2) (2)"}, roster
        csv_rows = (await http.get(f"/api/classes/{made['code']}/export.csv",
                                   headers=bearer(made["instructor_token"]))).text
        assert "Eve (3)" in csv_rows

    scenario(tmp_path, go)


def test_the_join_link_again_says_who_this_browser_is_in_as(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        first = await http.get(f"/join/{made['code']}")
        assert "Your name" in first.text and "in as" not in first.text
        token = await csrf(http, f"/join/{made['code']}")
        joined = await http.post(f"/join/{made['code']}", data={"csrf_token": token,
                                                                "name": "Eve"})
        assert joined.status_code == 303
        again = await http.get(f"/join/{made['code'].lower()}")
        assert again.status_code == 200
        assert "You're in as <strong>Eve</strong>" in again.text
        assert 'href="http://test/lessons/example-layers#step-sum-along-an-axis"' in again.text
        assert 'name="name"' not in again.text  # no fresh join form
        other = await new_class(http, title="Another class")
        elsewhere = await http.get(f"/join/{other['code']}")
        assert "in as" not in elsewhere.text and 'name="name"' in elsewhere.text

    scenario(tmp_path, go)
