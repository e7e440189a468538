"""Live classes through the API and the pages: the contract, privacy, refusals, bad input.

The app is built inline over a real SQLite file; its pool is a stand-in
that answers at once (or holds a run), as the class rules sit in front of
the pool. The real sandbox serves the class in test_class_simulation.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from app.settings import ROOT, Settings
from sandbox.executor import ExecutorContext
from sandbox.fairqueue import Client, FairQueue
from sandbox.protocol import RunRequest, RunResult, RunStatus
from sandbox.stats import PoolStats
from tests.conftest import LiveServer

QUICK = {"framework": "pytorch", "code": "print('ran')"}
PAIR = {"tensorflow": "x = 1", "pytorch": "x = 1", "compare": ["x"]}


class QuickPool:
    """Answers every run at once through a real fair queue; `hold` keeps runs waiting."""

    def __init__(self) -> None:
        self.queue = FairQueue(slots=2, max_waiting=64, max_waiting_per_learner=4,
                               max_waiting_per_address=64)
        self.hold = asyncio.Event()
        self.hold.set()
        self.clients: list[Client] = []
        self.context = ExecutorContext()

    async def run(self, request: RunRequest, client: Client) -> RunResult:
        self.clients.append(client)
        await self.queue.acquire(client)
        try:
            await self.hold.wait()
            if "raise" in request.code:
                return RunResult.failed(RunStatus.error, "ValueError", "boom",
                                        framework=request.framework)
            return RunResult(status=RunStatus.ok, stdout="ran\n", framework=request.framework)
        finally:
            self.queue.release()

    def stats(self) -> PoolStats:  # what pages and /api/health read
        return PoolStats(slots=2, busy=self.queue.busy, queued=self.queue.waiting,
                         runs_started=len(self.clients), template_alive=True, degraded=None,
                         sandbox="stand-in", insecure=False, memory_cgroups=None,
                         memory_limit="none", cpu_limit="none", spares_ready=0, spares_warming=0, reserve={},
                         reserve_memory_mb=0, tensorflow_kernels=None, pool_pss_mb=None,
                         template_restarts=0)


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    pool = QuickPool()
    app = create_app(Settings(data_dir=tmp_path, packs_dir=ROOT / "lessons", **settings),
                     executor=pool)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, pool


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_class(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/classes", json={"pack": "example", "title": "Tuesday",
                                                     **body})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def join(http: httpx.AsyncClient, code: str, name: str) -> str:
    response = await http.post(f"/api/classes/{code}/join", json={"name": name})
    assert response.status_code == 201, response.text
    http.cookies.clear()  # each learner is their own client here
    return response.json()["student_token"]  # type: ignore[no-any-return]


def scenario(tmp_path: Path, go: Any, **settings: Any) -> None:
    async def main() -> None:
        async with serve(tmp_path, **settings) as (http, pool):
            await go(http, pool)

    asyncio.run(main())


def test_create_join_and_runs_count_for_that_learner(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        assert re.fullmatch(r"[A-HJ-NP-Z2-9]{6}", made["code"])
        assert made["join_url"] == f"http://test/join/{made['code']}"
        assert made["instructor_url"].endswith("#key=" + made["instructor_token"])
        assert len(made["instructor_token"]) >= 22  # 128 bits, url-safe
        joined = await http.post(f"/api/classes/{made['code']}/join", json={"name": "Ana"})
        assert joined.status_code == 201
        assert joined.json()["lesson_url"] == "http://test/lessons/example-layers"
        assert joined.cookies.get("sbs_class") == joined.json()["student_token"]
        ana = joined.json()["student_token"]
        http.cookies.clear()
        ben = await join(http, made["code"], "Ben")

        assert (await http.post("/api/runs", json=QUICK, headers=bearer(ana))).status_code == 200
        failing = {**QUICK, "code": "raise ValueError('boom')"}
        assert (await http.post("/api/runs", json=failing, headers=bearer(ana))).status_code == 200
        assert (await http.post("/api/pairs", json=PAIR, headers=bearer(ben))).status_code == 200
        assert (await http.post("/api/runs", json=QUICK)).status_code == 200  # self-study

        roster = (await http.get(f"/api/classes/{made['code']}/roster",
                                 headers=bearer(made["instructor_token"]))).json()
        assert [set(r) >= {"name", "step", "runs", "passed", "last_status", "last_error",
                           "stuck"} for r in roster] == [True, True]
        by_name = {r["name"]: r for r in roster}
        assert by_name["Ana"]["runs"] == 2 and by_name["Ana"]["last_status"] == "error"
        assert by_name["Ana"]["last_error"].startswith("ValueError")
        assert by_name["Ben"]["runs"] == 1 and by_name["Ben"]["last_status"] == "ok"
        assert by_name["Ana"]["step"] == "sum-along-an-axis" and not by_name["Ana"]["stuck"]
        # in the fair queue a class learner is in the class's group
        groups = {c.group for c in pool.clients}
        assert groups == {"", f"class:{made['code']}"}

    scenario(tmp_path, go)


def test_a_subset_of_lessons_in_order_and_the_class_state(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await http.post("/api/classes", json={
            "pack": "tf-to-torch", "title": "Two lessons", "lessons": ["autograd", "tensors"]})
        assert made.status_code == 201, made.text
        body = made.json()
        state = (await http.get(f"/api/classes/{body['code']}",
                                headers=bearer(body["instructor_token"]))).json()
        assert state["lessons"] == ["autograd", "tensors"]
        joined = await http.post(f"/api/classes/{body['code']}/join", json={"name": "Cy"})
        assert joined.json()["lesson_url"].endswith("/lessons/autograd")

    scenario(tmp_path, go)


def test_the_roster_and_code_are_the_instructors_alone(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        mine, other = await new_class(http), await new_class(http, title="Other")
        code, teacher = mine["code"], mine["instructor_token"]
        ana = await join(http, code, "Ana")
        stranger = await join(http, other["code"], "Eve")
        await http.post("/api/runs", json={**QUICK, "code": "secret = 42"}, headers=bearer(ana))
        roster = (await http.get(f"/api/classes/{code}/roster", headers=bearer(teacher))).json()
        ana_id = roster[0]["id"]

        instructor_only = [
            ("GET", f"/api/classes/{code}"), ("GET", f"/api/classes/{code}/roster"),
            ("GET", f"/api/classes/{code}/learners/{ana_id}"),
            ("GET", f"/api/classes/{code}/events"), ("GET", f"/api/classes/{code}/export.csv"),
            ("POST", f"/api/classes/{code}/pause"), ("POST", f"/api/classes/{code}/end"),
            ("POST", f"/api/classes/{code}/message"), ("POST", f"/api/classes/{code}/follow"),
            ("DELETE", f"/api/classes/{code}/learners/{ana_id}"),
        ]
        for method, path in instructor_only:
            body = {"json": {}} if method == "POST" else {}
            assert (await http.request(method, path, **body)).status_code == 401, path
            for token in (ana, stranger, other["instructor_token"], "x" * 22):
                response = await http.request(method, path, headers=bearer(token), **body)
                assert response.status_code == 403, (path, response.text)
                assert "secret" not in response.text and "Ana" not in response.text
        seen = await http.get(f"/api/classes/{code}/learners/{ana_id}", headers=bearer(teacher))
        assert seen.json()["pytorch"] == "secret = 42"
        # the other class's instructor cannot reach Ana through their own class either
        elsewhere = await http.get(f"/api/classes/{other['code']}/learners/{ana_id}",
                                   headers=bearer(other["instructor_token"]))
        assert elsewhere.status_code == 404
        # a learner's cookie doesn't open the dashboard; the stream of their class is theirs only
        page = await http.get(f"/classes/{code}/dashboard", cookies={"sbs_class": ana})
        assert page.status_code == 401 and "Ana" not in page.text
        wrong = await http.get(f"/classes/{code}/dashboard",
                               cookies={f"sbs_teach_{code}": other["instructor_token"]})
        assert wrong.status_code == 403
        stream = await http.get(f"/classes/{code}/stream", cookies={"sbs_class": stranger})
        assert stream.status_code == 403
        assert (await http.get(f"/api/classes/{code}/roster",
                               headers=bearer(teacher))).status_code == 200

    scenario(tmp_path, go)


def test_pause_refuses_runs_clearly_and_end_makes_the_class_read_only(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], bearer(made["instructor_token"])
        ana = await join(http, code, "Ana")
        paused = await http.post(f"/api/classes/{code}/pause", headers=teacher)
        assert paused.status_code == 200 and paused.json()["paused"] is True
        refused = await http.post("/api/runs", json=QUICK, headers=bearer(ana))
        assert refused.status_code == 423
        assert refused.json()["detail"] == "Runs are paused by the instructor."
        assert (await http.post("/api/pairs", json=PAIR, headers=bearer(ana))).status_code == 423
        resumed = await http.post(f"/api/classes/{code}/pause", json={"paused": False},
                                  headers=teacher)
        assert resumed.json()["paused"] is False
        assert (await http.post("/api/runs", json=QUICK, headers=bearer(ana))).status_code == 200

        message = await http.post(f"/api/classes/{code}/message", json={"text": "Break: 5 min"},
                                  headers=teacher)
        assert message.json()["message"] == "Break: 5 min"
        ended = await http.post(f"/api/classes/{code}/end", headers=teacher)
        assert ended.json()["ended"] is True
        for path, body in (("follow", {"lesson": "example-layers", "step": "a-dense-layer"}),
                           ("message", {"text": "hello?"}), ("pause", {})):
            late = await http.post(f"/api/classes/{code}/{path}", json=body, headers=teacher)
            assert late.status_code == 409 and late.json()["detail"] == "This class has ended."
        late_join = await http.post(f"/api/classes/{code}/join", json={"name": "Late"})
        assert late_join.status_code == 409
        # the learner keeps learning; the frozen roster no longer counts it
        assert (await http.post("/api/runs", json=QUICK, headers=bearer(ana))).status_code == 200
        roster = (await http.get(f"/api/classes/{code}/roster", headers=teacher)).json()
        assert roster[0]["runs"] == 1

    scenario(tmp_path, go)


def test_one_run_in_flight_per_learner(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        ana = await join(http, made["code"], "Ana")
        ben = await join(http, made["code"], "Ben")
        pool.hold.clear()
        first = asyncio.create_task(http.post("/api/runs", json=QUICK, headers=bearer(ana)))
        while pool.queue.busy < 1:
            await asyncio.sleep(0.01)
        second = await http.post("/api/runs", json=QUICK, headers=bearer(ana))
        assert second.status_code == 429 and "still going" in second.json()["detail"]
        assert second.headers["retry-after"] == "1"
        other = asyncio.create_task(http.post("/api/runs", json=QUICK, headers=bearer(ben)))
        while pool.queue.busy < 2:
            await asyncio.sleep(0.01)
        pool.hold.set()
        assert (await first).status_code == 200 and (await other).status_code == 200
        again = await http.post("/api/runs", json=QUICK, headers=bearer(ana))
        assert again.status_code == 200

    scenario(tmp_path, go)


def test_bad_input_gets_a_4xx_with_a_message(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], bearer(made["instructor_token"])
        cases: list[tuple[str, str, Any, int]] = [
            ("POST", "/api/classes", {"pack": "nope", "title": "x"}, 404),
            ("POST", "/api/classes", {"pack": "example", "title": "x", "lessons": ["zzz"]}, 400),
            ("POST", "/api/classes", {"pack": "example", "title": "   "}, 422),
            ("POST", "/api/classes", {"pack": "example", "title": "x" * 121}, 422),
            ("POST", "/api/classes", {"pack": "example", "title": "x", "extra": 1}, 422),
            ("POST", "/api/classes", {"pack": "example", "title": "x",
                                      "lessons": ["example-layers"] * 2}, 400),
            ("POST", "/api/classes", "{not json", 422),
            ("POST", f"/api/classes/{code}/join", {"name": ""}, 422),
            ("POST", f"/api/classes/{code}/join", {"name": "x" * 41}, 422),
            ("POST", f"/api/classes/{code}/join", {"name": "bell\x07"}, 422),
            ("POST", f"/api/classes/{code}/join", {"name": "rtl\u202eevil"}, 422),
            ("POST", f"/api/classes/{code}/join", {"name": 5}, 422),
            ("POST", "/api/classes/ZZZZZZ/join", {"name": "Ana"}, 404),
            ("POST", "/api/classes/not-a-code-at-all/join", {"name": "Ana"}, 404),
            ("GET", "/api/classes/%00%00/roster", None, 401),
        ]
        for method, path, body, status in cases:
            kwargs: dict[str, Any] = (
                {"content": body, "headers": {"content-type": "application/json"}}
                if isinstance(body, str) else {"json": body} if body is not None else {})
            response = await http.request(method, path, **kwargs)
            assert response.status_code == status, (path, body, response.text)
            assert response.json()["detail"], (path, body)
        teacher_cases: list[tuple[str, Any, int]] = [
            ("follow", {"lesson": "example-layers", "step": "nope"}, 400),
            ("follow", {"lesson": "tensors", "step": "x"}, 400),  # not this class's
            ("follow", {"lesson": "example-layers"}, 422),
            ("message", {"text": "x" * 501}, 422),
            ("message", {"text": ""}, 422),
            ("pause", {"paused": "perhaps"}, 422),
        ]
        for path, body, status in teacher_cases:
            response = await http.post(f"/api/classes/{code}/{path}", json=body, headers=teacher)
            assert response.status_code == status, (path, body, response.text)
            assert response.json()["detail"]
        huge = await http.post(f"/api/classes/{code}/message", headers=teacher,
                               content=json.dumps({"text": "x" * 2_000_000}),
                               )
        assert huge.status_code == 413
        unknown = await http.post("/api/runs", json=QUICK, headers=bearer("made-up-token"))
        assert unknown.status_code == 401

    scenario(tmp_path, go)


def test_joins_are_rate_limited_per_address_and_classes_capped(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code = made["code"]
        await join(http, code, "One")
        await join(http, code, "Two")
        full = await http.post(f"/api/classes/{code}/join", json={"name": "Three"})
        assert full.status_code == 409 and "full (2 learners)" in full.json()["detail"]
        guesses = [await http.post(f"/api/classes/{c}/join", json={"name": "G"})
                   for c in ("AAAAAA", "BBBBBB")]
        assert [g.status_code for g in guesses] == [404, 429]  # the 5th attempt in a minute
        assert int(guesses[1].headers["retry-after"]) >= 1
        assert "Too many join attempts" in guesses[1].json()["detail"]
        # the join page can't be used to look codes up instead
        assert (await http.get(f"/join/{code}")).status_code == 429

    scenario(tmp_path, go, class_max_learners=2, class_joins_per_minute=4)


def from_address(http: httpx.AsyncClient, host: str) -> httpx.AsyncClient:
    """Another client of the same app, from its own address."""
    app = http._transport.app  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 40000)),
                             base_url="http://test")


def test_many_addresses_together_cannot_seat_more_than_the_class_limit_a_minute(
        tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        code = (await new_class(http))["code"]
        other = (await new_class(http))["code"]
        answers = []
        for i in range(5):
            async with from_address(http, f"10.9.0.{i}") as learner:
                answers.append(await learner.post(f"/api/classes/{code}/join",
                                                  json={"name": f"L{i}"}))
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        assert 1 <= int(answers[3].headers["retry-after"]) <= 60
        assert "Too many people are joining this class" in answers[3].json()["detail"]
        async with from_address(http, "10.9.1.1") as learner:
            assert (await learner.post(f"/api/classes/{other}/join",
                                       json={"name": "Elsewhere"})).status_code == 201
            page = await learner.get(f"/join/{code}")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            form = await learner.post(f"/join/{code}", data={"csrf_token": token.group(1),
                                                              "name": "By form"})
            assert form.status_code == 429 and "Too many people are joining" in form.text
            assert int(form.headers["retry-after"]) >= 1

    scenario(tmp_path, go, class_joins_per_class_per_minute=3)


def test_one_address_may_start_only_so_many_classes_an_hour(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        await new_class(http)
        await new_class(http)
        refused = await http.post("/api/classes", json={"pack": "example", "title": "Third"})
        assert refused.status_code == 429
        assert "started 2 classes in the last hour" in refused.json()["detail"]
        assert 3000 < int(refused.headers["retry-after"]) <= 3600
        bad = await http.post("/api/classes", json={"pack": "nope", "title": "Bad pack"})
        assert bad.status_code == 404  # bad input is still told as such
        page = await http.get("/classes/new")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        form = await http.post("/classes/new", data={"csrf_token": token.group(1),
                                                     "title": "By form", "pack": "example"})
        assert form.status_code == 429 and "started 2 classes in the last hour" in form.text
        assert int(form.headers["retry-after"]) > 3000
        async with from_address(http, "10.9.2.2") as colleague:
            assert (await colleague.post("/api/classes", json={
                "pack": "example", "title": "Theirs"})).status_code == 201

    scenario(tmp_path, go, classes_per_address_per_hour=2)


def test_only_the_join_page_tells_live_codes_from_dead_ones(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        live, dead = made["code"], "ZZZZZZ" if made["code"] != "ZZZZZZ" else "YYYYYY"
        for path in ("", "/roster", "/events", "/export.csv"):
            for token in (None, "x" * 22):
                answers = [await http.get(f"/api/classes/{code}{path}",
                                          headers=bearer(token) if token else {})
                           for code in (live, dead)]
                assert answers[0].status_code == answers[1].status_code in (401, 403)
                assert answers[0].json() == answers[1].json()
        pages = [await http.get(f"/classes/{code}/teach") for code in (live, dead)]
        assert pages[0].status_code == pages[1].status_code == 200
        assert "Tuesday" not in pages[0].text
        misses = [(await http.get(f"/join/Q{i}QQQQ")).status_code for i in range(2, 5)]
        assert misses == [404, 404, 429]  # wrong codes count against the address
        assert (await http.get("/join/" + live)).status_code == 429

    scenario(tmp_path, go, class_joins_per_minute=2)


def test_csv_export_has_every_learner_and_defuses_formulas(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made = await new_class(http)
        code, teacher = made["code"], bearer(made["instructor_token"])
        for name in ("Ana", "=HYPERLINK(\"x\")", "Zoë, the \"quoted\""):
            await join(http, code, name)
        response = await http.get(f"/api/classes/{code}/export.csv", headers=teacher)
        assert response.headers["content-type"].startswith("text/csv")
        assert f"class-{code}.csv" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["name"] for r in rows] == ["Ana", "'=HYPERLINK(\"x\")", "Zoë, the \"quoted\""]
        assert set(rows[0]) >= {"name", "step", "runs", "exercises_passed", "last_status",
                                "last_error", "stuck"}

    scenario(tmp_path, go)


def test_the_event_stream_starts_whole_and_then_follows_the_class(
        live_server: LiveServer) -> None:
    """Over a real server (ASGITransport would buffer the endless response) and a real run."""
    with httpx.Client(base_url=live_server.url, timeout=90) as http:
        made = http.post("/api/classes", json={"pack": "example", "title": "SSE"}).json()
        code, teacher = made["code"], bearer(made["instructor_token"])
        http.post(f"/api/classes/{code}/join", json={"name": "Ana"})
        http.cookies.clear()
        events: list[tuple[str, str]] = []
        opened = threading.Event()

        def listen() -> None:
            with httpx.Client(base_url=live_server.url, timeout=90) as own, \
                    own.stream("GET", f"/api/classes/{code}/events", headers=teacher) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                name = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        events.append((name, line[6:]))
                        opened.set()
                        if name == "run":
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert opened.wait(30)
        time.sleep(0.2)
        assert [n for n, _ in events] == ["state", "roster"]
        assert json.loads(events[1][1])[0]["name"] == "Ana"
        ben = http.post(f"/api/classes/{code}/join", json={"name": "Ben"}).json()
        http.cookies.clear()
        ran = http.post("/api/runs", json=QUICK, headers=bearer(ben["student_token"]))
        assert ran.status_code == 200 and ran.json()["stdout"] == "ran\n"
        listener.join(30)
        assert [n for n, _ in events][2:] == ["joined", "run"]
        run = json.loads(events[-1][1])
        assert run["name"] == "Ben" and run["status"] == "ok"


def test_the_api_is_in_the_schema_and_docs_work_offline(tmp_path: Path) -> None:
    async def go(http: httpx.AsyncClient, pool: QuickPool) -> None:
        schema = (await http.get("/openapi.json")).json()
        paths = schema["paths"]
        for path, method in [
                ("/api/classes", "post"), ("/api/classes/{code}/join", "post"),
                ("/api/classes/{code}/roster", "get"), ("/api/classes/{code}/events", "get"),
                ("/api/classes/{code}/follow", "post"), ("/api/classes/{code}/message", "post"),
                ("/api/classes/{code}/pause", "post"), ("/api/classes/{code}/end", "post"),
                ("/api/classes/{code}/export.csv", "get")]:
            assert method in paths[path], path
        assert "201" in paths["/api/classes"]["post"]["responses"]
        assert "text/event-stream" in paths["/api/classes/{code}/events"]["get"]["responses"][
            "200"]["content"]
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "<script>" not in docs.text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text)
        assert any("swagger-ui-bundle.js" in a for a in assets)
        assert "cdn" not in docs.text.lower() and "https://" not in docs.text
        for asset in assets:
            assert (await http.get(asset)).status_code == 200, asset

    scenario(tmp_path, go)


def test_nothing_is_lost_when_the_server_restarts(tmp_path: Path) -> None:
    made: dict[str, Any] = {}

    async def before(http: httpx.AsyncClient, pool: QuickPool) -> None:
        made.update(await new_class(http))
        made["ana"] = await join(http, made["code"], "Ana")
        teacher = bearer(made["instructor_token"])
        await http.post("/api/runs", json=QUICK, headers=bearer(made["ana"]))
        await http.post(f"/api/classes/{made['code']}/pause", headers=teacher)
        await http.post(f"/api/classes/{made['code']}/follow", headers=teacher,
                        json={"lesson": "example-layers", "step": "a-dense-layer"})

    async def after(http: httpx.AsyncClient, pool: QuickPool) -> None:
        teacher = bearer(made["instructor_token"])
        state = (await http.get(f"/api/classes/{made['code']}", headers=teacher)).json()
        assert state["paused"] and state["follow_step"] == "a-dense-layer"
        roster = (await http.get(f"/api/classes/{made['code']}/roster", headers=teacher)).json()
        assert roster[0]["name"] == "Ana" and roster[0]["runs"] == 1
        refused = await http.post("/api/runs", json=QUICK, headers=bearer(made["ana"]))
        assert refused.status_code == 423  # the learner's token still holds its seat

    scenario(tmp_path, before)
    scenario(tmp_path, after)
