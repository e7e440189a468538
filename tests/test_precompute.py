"""A lesson's missing outputs are the server's own work: capped per viewer, address and
pack, queued only for an authorised caller, never for a version still being checked,
and a run cut short is shown as it was instead of queued again on every view.
A real server, real sandbox, real SQLite."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from app.pipeline.precompute import (
    PENDING_PER_ADDRESS,
    PENDING_PER_PACK,
    PENDING_PER_VIEWER,
    Precompute,
    Viewer,
)
from app.settings import Settings
from app.state import AppState
from tests.conftest import LiveServer, free_port

STEPS = 12  # 24 sides: more than one viewer may have pending
SLOW = 6  # the first SLOW steps' PyTorch side outlives its lesson's time limit
VIEWER = "aViewerOfThisLesson012"  # a learner id as the server hands them out
JOB = re.compile(r'data-wait="/jobs/')


def lesson_text() -> str:
    steps = []
    for i in range(STEPS):
        body = "import time\ntime.sleep(30)" if i < SLOW else f"x = {i}"
        steps.append(f"## Step {i}\n\n```python tensorflow\nx = {i}\n```\n\n"
                     f"```python pytorch\n{body}\n```\n")
    return ("---\nid: many\ntitle: Many\nsummary: Many steps.\nlevel: beginner\n"
            "minutes: 5\ntimeout_s: 1\n---\n\nIntro.\n\n" + "\n".join(steps))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, AppState]]:
    packs = tmp_path_factory.mktemp("packs")
    (packs / "p").mkdir()
    (packs / "p" / "pack.yaml").write_text("id: p\ntitle: P\nversion: 1.0.0\n"
                                           "description: A pack.\nlessons:\n  - 01.md\n")
    (packs / "p" / "01.md").write_text(lesson_text())
    live = LiveServer(Settings(host="127.0.0.1", port=free_port(), packs_dir=packs,
                               data_dir=tmp_path_factory.mktemp("d"), pool_size=2))
    live.start()
    try:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            yield client, live.app.state.sidebyside
    finally:
        live.stop()


def wait_for_no_precompute(state: AppState, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while state.runs.precomputing.pending:
        assert time.monotonic() < deadline, "precompute never finished"
        time.sleep(0.2)


def test_caps_hold_per_viewer_per_address_and_per_pack() -> None:
    gate = Precompute(executor=None)  # type: ignore[arg-type]
    me = Viewer("me", "10.0.0.1", "pack")
    assert [gate.admit(me) for _ in range(PENDING_PER_VIEWER + 1)].count(True) == \
        PENDING_PER_VIEWER
    others = [gate.admit(Viewer(f"id{i}", "10.0.0.1", "pack")) for i in range(100)]
    assert others.count(True) == PENDING_PER_ADDRESS - PENDING_PER_VIEWER  # made-up ids
    elsewhere = [gate.admit(Viewer(f"x{i}", f"10.0.1.{i}", "pack")) for i in range(100)]
    assert elsewhere.count(True) == PENDING_PER_PACK - PENDING_PER_ADDRESS
    assert gate.admit(Viewer("me", "10.0.0.1", "another")) is False  # still my cap
    gate.release(me)
    assert gate.admit(Viewer("me", "10.0.0.1", "another")) is True


def test_a_bad_token_is_refused_before_anything_is_queued(
        server: tuple[httpx.Client, AppState]) -> None:
    client, state = server
    wait_for_no_precompute(state)
    running = len(state.runs.jobs._running)
    page = client.get("/lessons/many", headers={"Authorization": "Bearer not-a-token"})
    assert page.status_code == 401
    assert state.runs.precomputing.pending == 0 and len(state.runs.jobs._running) == running


def test_a_version_being_checked_gets_no_precompute_of_its_own(
        server: tuple[httpx.Client, AppState]) -> None:
    client, state = server
    wait_for_no_precompute(state)
    state.library.checking.add("p")
    try:
        page = client.get("/lessons/many", cookies={"sbs_learner": VIEWER})
    finally:
        state.library.checking.discard("p")
    assert page.status_code == 200 and not JOB.search(page.text)
    assert state.runs.precomputing.pending == 0


def test_a_view_queues_at_most_its_cap_and_what_was_cut_short_is_not_queued_again(
        server: tuple[httpx.Client, AppState]) -> None:
    client, state = server
    wait_for_no_precompute(state)
    first = client.get("/lessons/many", cookies={"sbs_learner": VIEWER})
    assert len(JOB.findall(first.text)) == PENDING_PER_VIEWER  # of 24 missing sides
    client.get("/lessons/many", cookies={"sbs_learner": VIEWER})
    assert state.runs.precomputing.pending <= PENDING_PER_VIEWER  # finished ones made room
    # Every view computes a little more, until every side has its output.
    deadline = time.monotonic() + 240
    while True:
        wait_for_no_precompute(state)
        page = client.get("/lessons/many", cookies={"sbs_learner": VIEWER}).text
        if not JOB.search(page):
            break
        assert time.monotonic() < deadline
    # The sleeping sides were cut short by the lesson's limit: shown as such, from the
    # cache, and no view queues them again.
    assert page.count("precomputed") == 2 * STEPS
    assert page.count("Time limit") >= SLOW or page.count("timeout") >= SLOW, page[:2000]
    assert state.runs.precomputing.pending == 0


def test_a_precompute_run_waits_while_any_run_waits_or_every_slot_is_busy() -> None:
    import asyncio
    import types

    stats = types.SimpleNamespace(queued=1, busy=0, slots=2)
    executor = types.SimpleNamespace(stats=lambda: stats)
    gate = Precompute(executor)  # type: ignore[arg-type]
    entered: list[str] = []
    hold = asyncio.Event()

    async def one(name: str) -> None:
        async with gate.turn():
            entered.append(name)
            await hold.wait()

    async def go() -> None:
        first = asyncio.create_task(one("first"))
        await asyncio.sleep(0.5)
        assert entered == []  # a learner's run is waiting
        stats.queued, stats.busy = 0, 2
        await asyncio.sleep(0.5)
        assert entered == []  # every slot is busy
        stats.busy = 1
        second = asyncio.create_task(one("second"))
        await asyncio.sleep(0.5)
        assert entered == ["first"]  # one precompute run at a time
        hold.set()
        await asyncio.gather(first, second)
        assert entered == ["first", "second"]

    asyncio.run(go())
