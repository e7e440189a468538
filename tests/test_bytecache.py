"""Server-side caches are bounded in bytes: the byte LRU, finished jobs, the memo, SVG URIs."""

from __future__ import annotations

import asyncio
from typing import Any

from app.bytecache import ByteLRU
from app.compare import Comparison
from app.packs.loader import load_pack
from app.pipeline.cache import OutputCache, result_bytes
from app.pipeline.jobs import Jobs
from app.pipeline.work import CheckOutcome, PairOutcome, StepCheck, StepPair, StepSide
from app.settings import ROOT
from app.web import views
from sandbox.fairqueue import Client
from sandbox.protocol import CapturedArray, Graph, RunResult, RunStatus

MiB = 2**20
CLIENT = Client("learner:me", "10.0.0.9")
LESSON = load_pack(ROOT / "lessons" / "example").lessons[0]
STEP = LESSON.steps[0]
SIDE = StepSide(LESSON, STEP, "pytorch", "x = 1")


def big_result(mib: int = 1) -> RunResult:
    return RunResult(status=RunStatus.ok, stdout="x" * (mib * MiB))


def test_many_large_items_stay_within_the_budget() -> None:
    cache: ByteLRU[int, bytes] = ByteLRU(8 * MiB)
    for i in range(100):
        cache.put(i, b"x" * MiB, MiB)
        assert cache.nbytes <= 8 * MiB
    assert len(cache) == 8 and cache.nbytes == 8 * MiB
    assert 91 not in cache and cache.get(92) is not None and cache.get(99) is not None


def test_least_recently_used_goes_first() -> None:
    cache: ByteLRU[str, str] = ByteLRU(3)
    for key in "abc":
        cache.put(key, key.upper(), 1)
    assert cache.get("a") == "A"  # now the most recent
    cache.put("d", "D", 1)
    assert [k for k, _ in cache.items()] == ["c", "a", "d"]


def test_replacing_an_entry_counts_its_new_size_only() -> None:
    cache: ByteLRU[str, str] = ByteLRU(10)
    cache.put("a", "small", 2)
    cache.put("a", "bigger", 7)
    assert cache.nbytes == 7 and cache.get("a") == "bigger"
    assert cache.pop("a") == "bigger" and cache.nbytes == 0 and cache.pop("a") is None


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache: ByteLRU[str, str] = ByteLRU(10)
    cache.put("small", "s", 5)
    cache.put("huge", "h", 11)
    assert "huge" not in cache and cache.get("small") == "s" and cache.nbytes == 5


def test_result_size_counts_output_graphs_and_captured_arrays() -> None:
    plain = result_bytes(RunResult(status=RunStatus.ok))
    result = RunResult(status=RunStatus.ok, stdout="o" * 1000,
                       graphs=[Graph(kind="autograd", title="g", svg="s" * 5000, nodes=1)])
    result.captured = {"w": CapturedArray(shape=[2], dtype="float32", data_b64="b" * 3000)}
    assert result_bytes(result) >= plain + 9000


def test_finished_jobs_are_evicted_by_bytes() -> None:
    async def go() -> None:
        jobs = Jobs(budget_bytes=5 * MiB)

        async def run() -> RunResult:
            return big_result(1)

        started = []
        for _ in range(20):
            job = jobs.start(run(), client=CLIENT, meta=SIDE)
            await jobs.settle(job, 5)
            assert jobs.done_bytes <= 5 * MiB
            started.append(job)
        await asyncio.sleep(0)
        kept = [j for j in started if jobs.get(j.id) is not None]
        assert 1 <= len(kept) <= 4  # each weighs a little over 1 MiB
        assert kept == started[-len(kept):]  # the oldest went first
        jobs.cancel_all()

    asyncio.run(go())


def test_jobs_weigh_pairs_checks_and_posted_code() -> None:
    async def go() -> None:
        jobs = Jobs(budget_bytes=64 * MiB)

        async def pair() -> PairOutcome:
            return PairOutcome(tensorflow=big_result(1), pytorch=big_result(1),
                               comparison=Comparison(match=False))

        async def check() -> CheckOutcome:
            return CheckOutcome(False, "no", big_result(1), RunResult(status=RunStatus.ok),
                                attempts=1)

        for coro, meta in ((pair(), StepPair(LESSON, STEP, {"pytorch": "c" * MiB})),
                           (check(), StepCheck(LESSON, STEP, "", 0))):
            before = jobs.done_bytes
            job = jobs.start(coro, client=CLIENT, meta=meta)
            await jobs.settle(job, 5)
            await asyncio.sleep(0)
            assert jobs.done_bytes - before >= (3 if isinstance(meta, StepPair) else 1) * MiB
        jobs.cancel_all()

    asyncio.run(go())


def test_a_running_job_is_never_evicted_for_bytes() -> None:
    async def go() -> None:
        jobs = Jobs(budget_bytes=2 * MiB)
        gate = asyncio.Event()

        async def slow() -> RunResult:
            await gate.wait()
            return big_result(1)

        async def fast() -> RunResult:
            return big_result(1)

        waiting = jobs.start(slow(), client=CLIENT, meta=SIDE)
        for _ in range(10):
            await jobs.settle(jobs.start(fast(), client=CLIENT, meta=SIDE), 5)
        assert jobs.get(waiting.id) is waiting
        gate.set()
        await jobs.settle(waiting, 5)
        await asyncio.sleep(0)
        assert jobs.get(waiting.id) is waiting and jobs.done_bytes <= 2 * MiB
        jobs.cancel_all()

    asyncio.run(go())


def test_the_output_caches_memo_is_bounded_in_bytes() -> None:
    cache = OutputCache(db=None, memo_budget_bytes=4 * MiB)  # type: ignore[arg-type]
    for i in range(30):
        cache._remember(f"key{i}", big_result(1))
        assert cache.memo.nbytes <= 4 * MiB
    assert "key29" in cache.memo and "key0" not in cache.memo


def test_svg_data_uris_are_cached_within_their_budget(monkeypatch: Any) -> None:
    monkeypatch.setattr(views, "_svg_uris", ByteLRU(4 * MiB))
    first = views.svg_data_uri("<svg>" + "x" * MiB + "</svg>")
    assert first.startswith("data:image/svg+xml;base64,")
    for i in range(20):
        views.svg_data_uri(f"<svg>{i}" + "x" * MiB + "</svg>")
        assert views._svg_uris.nbytes <= 4 * MiB
    assert views.svg_data_uri("<svg>" + "x" * MiB + "</svg>") == first  # recomputed, same
