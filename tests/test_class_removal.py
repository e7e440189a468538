"""The instructor takes a learner out of a class: API, dashboard, and what the learner sees.

Built inline over a real SQLite file, as tests/test_classes_api.py is; the
streams are followed over a real server in tests/test_event_streams.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx

from tests.test_classes_api import QUICK, QuickPool, bearer, join, new_class, serve


def scenario(tmp_path: Path, go: Any, **settings: Any) -> None:
    async def main() -> None:
        async with serve(tmp_path, **settings) as (http, pool):
            await go(http, pool)

    asyncio.run(main())


async def roster_of(http: httpx.AsyncClient, code: str, teacher: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/classes/{code}/roster", headers=bearer(teacher))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_removed_learner_leaves_the_roster_the_export_and_the_class(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], made["instructor_token"]
        ana = await join(http, code, "Ana")
        ben = await join(http, code, "Ben")
        await http.post("/api/runs", json=QUICK, headers=bearer(ana))
        ana_id = (await roster_of(http, code, teacher))[0]["id"]

        gone = await http.delete(f"/api/classes/{code}/learners/{ana_id}",
                                 headers=bearer(teacher))
        assert gone.status_code == 204
        assert [r["name"] for r in await roster_of(http, code, teacher)] == ["Ben"]
        export = await http.get(f"/api/classes/{code}/export.csv", headers=bearer(teacher))
        assert [r["name"] for r in csv.DictReader(io.StringIO(export.text))] == ["Ben"]
        state = (await http.get(f"/api/classes/{code}", headers=bearer(teacher))).json()
        assert state["learners"] == 1
        seen = await http.get(f"/api/classes/{code}/learners/{ana_id}", headers=bearer(teacher))
        assert seen.status_code == 404

        # the token no longer seats her: as a Bearer token it is refused ...
        refused = await http.post("/api/runs", json=QUICK, headers=bearer(ana))
        assert refused.status_code == 401
        # ... and as the browser's cookie her runs are her own, outside the class
        pool.clients.clear()
        ran = await http.post("/api/runs", json=QUICK, cookies={"sbs_class": ana})
        assert ran.status_code == 200 and [c.group for c in pool.clients] == [""]
        lesson = await http.get("/lessons/example-layers", cookies={"sbs_class": ana})
        assert lesson.status_code == 200 and 'id="class-banner"' not in lesson.text
        assert "/stream" not in lesson.text
        stream = await http.get(f"/classes/{code}/stream", cookies={"sbs_class": ana})
        assert stream.status_code == 403
        assert [r["runs"] for r in await roster_of(http, code, teacher)] == [0]

        again = await http.delete(f"/api/classes/{code}/learners/{ana_id}",
                                  headers=bearer(teacher))
        assert again.status_code == 404 and "No such learner" in again.json()["detail"]
        assert (await http.delete(f"/api/classes/{code}/learners/{'x' * 300}",
                                  headers=bearer(teacher))).status_code == 404
        # she may join again, as someone new the instructor sees join
        back = await http.post(f"/api/classes/{code}/join", json={"name": "Ana again"})
        assert back.status_code == 201 and back.json()["student_token"] != ana
        http.cookies.clear()
        assert [r["name"] for r in await roster_of(http, code, teacher)] == ["Ben", "Ana again"]
        assert (await http.post("/api/runs", json=QUICK, headers=bearer(ben))).status_code == 200

    scenario(tmp_path, go)


def test_removing_frees_a_seat_and_a_run_in_flight_is_not_counted(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], made["instructor_token"]
        ana = await join(http, code, "Ana")
        await join(http, code, "Ben")
        full = await http.post(f"/api/classes/{code}/join", json={"name": "Cy"})
        assert full.status_code == 409
        ana_id = (await roster_of(http, code, teacher))[0]["id"]
        pool.hold.clear()
        running = asyncio.create_task(http.post("/api/runs", json=QUICK, headers=bearer(ana)))
        while pool.queue.busy < 1:
            await asyncio.sleep(0.01)
        await http.delete(f"/api/classes/{code}/learners/{ana_id}", headers=bearer(teacher))
        pool.hold.set()
        assert (await running).status_code == 200  # her run ends as it would have
        assert await join(http, code, "Cy")
        entries = await roster_of(http, code, teacher)
        assert [(r["name"], r["runs"]) for r in entries] == [("Ben", 0), ("Cy", 0)]

    scenario(tmp_path, go, class_max_learners=2)


def test_an_ended_class_keeps_its_roster(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], made["instructor_token"]
        await join(http, code, "Ana")
        ana_id = (await roster_of(http, code, teacher))[0]["id"]
        await http.post(f"/api/classes/{code}/end", headers=bearer(teacher))
        late = await http.delete(f"/api/classes/{code}/learners/{ana_id}",
                                 headers=bearer(teacher))
        assert late.status_code == 409 and late.json()["detail"] == "This class has ended."
        page = await http.get(f"/classes/{code}/dashboard",
                              cookies={f"sbs_teach_{code}": teacher})
        assert page.status_code == 200 and 'data-action="remove"' not in page.text

    scenario(tmp_path, go)


def test_the_dashboard_removes_a_learner_with_the_csrf_token(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], made["instructor_token"]
        await join(http, code, "Ana <b>")
        await join(http, code, "Ben")
        jar = {f"sbs_teach_{code}": teacher}
        page = await http.get(f"/classes/{code}/dashboard", cookies=jar)
        rows = re.findall(r'data-learner="([^"]+)"', page.text)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert len(rows) == 2 and token
        ana_id, ben_id = rows
        action = f"/classes/{code}/learners/{ana_id}/remove"
        assert f'action="{action}"' in page.text and f'hx-post="{action}"' in page.text
        assert 'aria-label="Remove Ana &lt;b&gt;"' in page.text

        no_csrf = await http.post(action, cookies=jar)
        assert no_csrf.status_code == 403
        stranger = await http.post(action, data={"csrf_token": token.group(1)})
        assert stranger.status_code == 401
        swapped = await http.post(action, cookies=jar, data={"csrf_token": token.group(1)},
                                  headers={"HX-Request": "true"})
        assert swapped.status_code == 200
        assert swapped.text.lstrip().startswith('<table class="roster" id="roster">')
        assert ana_id not in swapped.text and ben_id in swapped.text
        again = await http.post(action, cookies=jar, data={"csrf_token": token.group(1)},
                                headers={"HX-Request": "true"})
        assert again.status_code == 200 and "No such learner in this class." in again.text
        plain = await http.post(f"/classes/{code}/learners/{ben_id}/remove", cookies=jar,
                                data={"csrf_token": token.group(1)})
        assert plain.status_code == 303
        assert plain.headers["location"] == f"/classes/{code}/dashboard"
        assert await roster_of(http, code, teacher) == []

    scenario(tmp_path, go)
