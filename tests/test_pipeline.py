"""The run pipeline's own rules: one request builder, the output cache, sharing, routing,
the exercise checker. Real SQLite; the executor is a stand-in that counts what reaches it
(the sandbox itself is exercised end to end in test_pages, test_runs_api and test_check)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.packs.loader import load_pack
from app.pipeline.cache import OutputCache
from app.pipeline.exercise import PASSED, judge
from app.pipeline.requests import RunOptions, build_request, exercise_options, original_code
from app.pipeline.service import RunService
from app.pipeline.work import StepCheck, StepPair, StepSide
from app.settings import ROOT
from app.store.db import Database
from sandbox.executor import ExecutorContext
from sandbox.fairqueue import Client
from sandbox.protocol import CapturedArray, Device, ErrorInfo, RunRequest, RunResult, RunStatus

T = TypeVar("T")
CLIENT = Client("learner:me", "10.0.0.9")
PACK = load_pack(ROOT / "lessons" / "example")
LESSON = PACK.lessons[0]
COMPARED = next(s for s in LESSON.steps if s.compare is not None)
EXERCISE = next(s for s in LESSON.steps if s.exercise is not None)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class CountingExecutor:
    """Answers every request with its code's length as `x`, after `delay_s`, and counts."""

    def __init__(self, serves_gpu: bool = False, status: RunStatus = RunStatus.ok,
                 delay_s: float = 0.0) -> None:
        self.context = ExecutorContext(device="", versions={"torch": "2.13.0"})
        self.requests: list[RunRequest] = []
        self.serves_gpu, self.status, self.delay_s = serves_gpu, status, delay_s
        self.size = 2

    def serves(self, device: Device) -> bool:
        return device == "cpu" or self.serves_gpu

    async def run(self, request: RunRequest, client: Client) -> RunResult:
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        result = RunResult(status=self.status, framework=request.framework)
        result.captured = {name: CapturedArray(shape=[], dtype="<i8", data_b64=_int64(len(
            request.code))) for name in request.capture}
        return result


def _int64(value: int) -> str:
    import base64

    return base64.b64encode(value.to_bytes(8, "little", signed=True)).decode()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "sidebyside.sqlite3")
    database.start()
    yield database
    database.stop()


# ---- building requests ----------------------------------------------------------------

def test_a_steps_request_carries_its_names_graph_device_and_time_limit() -> None:
    lesson = LESSON.model_copy(update={"device": "gpu", "timeout_s": 30.0})
    request = build_request("pytorch", "x = 1", lesson=lesson, step=COMPARED)
    assert COMPARED.compare is not None
    assert request.capture == COMPARED.compare.exprs("pytorch")
    assert (request.device, request.timeout_s, request.graph, request.repeat) == \
        ("gpu", 30.0, True, 1)


def test_what_the_caller_gives_wins_over_the_steps_wishes() -> None:
    request = build_request("tensorflow", "x = 1", lesson=LESSON, step=COMPARED,
                            options=RunOptions(repeat=10, capture={"y": "y"}, graph=False,
                                               timeout_s=3.0, device="cpu"))
    assert (request.repeat, request.capture, request.graph, request.timeout_s) == \
        (10, {"y": "y"}, False, 3.0)
    assert build_request("pytorch", "x = 1").capture == {}  # no step: nothing compared


def test_an_exercise_compares_its_own_names_bare_and_keeps_the_steps_example() -> None:
    ex = EXERCISE.exercise
    assert ex is not None
    assert exercise_options(EXERCISE).capture == {n: n for n in ex.compare}
    # both sides show the step's own example; the exercise has an editor of its own
    for side in ("tensorflow", "pytorch"):
        assert original_code(EXERCISE, side) == EXERCISE.snippet(side).code


# ---- the output cache -------------------------------------------------------------------

def test_a_finished_result_is_kept_with_its_captured_arrays(db: Database) -> None:
    cache = OutputCache(db)
    result = RunResult(status=RunStatus.error, stdout="hello",
                       error=ErrorInfo(type="ValueError", message="no", line=3))
    result.captured = {"x": CapturedArray(shape=[], dtype="<i8", data_b64=_int64(7))}

    async def go() -> RunResult | None:
        assert await cache.put("k", result)
        fresh = OutputCache(db)  # nothing in memory: read back from SQLite
        return (await fresh.get_many(["k", "missing"]))[0]

    back = run(go())
    assert back is not None and back.stdout == "hello" and back.error == result.error
    assert back.captured["x"].data_b64 == _int64(7)


@pytest.mark.parametrize("status", [RunStatus.killed, RunStatus.rejected])
def test_a_run_that_never_ran_or_lost_its_sandbox_is_not_kept(db: Database,
                                                              status: RunStatus) -> None:
    cache = OutputCache(db)

    async def go() -> list[RunResult | None]:
        assert not await cache.put("k", RunResult(status=status))
        return await OutputCache(db).get_many(["k"])

    assert run(go()) == [None]


@pytest.mark.parametrize("status", [RunStatus.timeout, RunStatus.memory, RunStatus.output_limit])
def test_a_run_cut_short_by_its_limits_is_kept_for_a_while_only(
        db: Database, status: RunStatus, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from app.pipeline import cache as cache_module

    cache = OutputCache(db)
    run(cache.put("k", RunResult(status=status)))
    found = run(cache.get_many(["k"]))[0]
    assert found is not None and found.status == status
    later = time.time() + cache_module.CUT_SHORT_KEEP_S + 1
    monkeypatch.setattr(cache_module.time, "time", lambda: later)
    assert run(cache.get_many(["k"])) == [None]


def test_the_key_follows_the_request_the_versions_and_the_device() -> None:
    request = build_request("pytorch", "x = 1", lesson=LESSON, step=COMPARED)
    here = ExecutorContext(device="", versions={"torch": "2.13.0"})
    keys = {OutputCache.key(request, here),
            OutputCache.key(request.model_copy(update={"code": "x = 2"}), here),
            OutputCache.key(request, here.model_copy(update={"device": "H100"})),
            OutputCache.key(request, here.model_copy(update={"versions": {"torch": "2.14"}}))}
    assert len(keys) == 4
    assert OutputCache.key(request, here) == OutputCache.key(request.model_copy(), here)


# ---- the service ----------------------------------------------------------------------

def test_identical_lesson_runs_in_flight_share_one_run_and_then_the_cache(
        db: Database) -> None:
    executor = CountingExecutor(delay_s=0.05)
    service = RunService(executor, OutputCache(db))  # type: ignore[arg-type]
    side = StepSide(LESSON, COMPARED, "pytorch", COMPARED.pytorch.code)
    assert side.original

    async def go() -> list[RunResult]:
        together = await asyncio.gather(*(service.side(side, CLIENT) for _ in range(5)))
        return [*together, await service.side(side, CLIENT)]

    results = run(go())
    assert len(executor.requests) == 1
    assert all(r.status == RunStatus.ok for r in results)


def test_edited_code_always_runs_and_is_never_cached(db: Database) -> None:
    executor = CountingExecutor()
    service = RunService(executor, OutputCache(db))  # type: ignore[arg-type]
    edited = StepSide(LESSON, COMPARED, "pytorch", "x = 'mine'")
    assert not edited.original

    async def go() -> list[RunResult | None]:
        await service.side(edited, CLIENT)
        await service.side(edited, CLIENT)
        return await service.cached([build_request("pytorch", edited.code, lesson=LESSON,
                                                   step=COMPARED)])

    assert run(go()) == [None] and len(executor.requests) == 2


def test_a_gpu_wish_runs_on_a_cpu_while_no_gpu_serves_and_shares_its_cache_key() -> None:
    wish = build_request("pytorch", "x = 1", options=RunOptions(device="gpu"))
    cpu_only = RunService(CountingExecutor())  # type: ignore[arg-type]
    with_gpu = RunService(CountingExecutor(serves_gpu=True))  # type: ignore[arg-type]
    assert cpu_only.routed(wish).device == "cpu" and with_gpu.routed(wish).device == "gpu"
    assert cpu_only.cache_key(wish) == cpu_only.cache_key(wish.model_copy(
        update={"device": "cpu"}))
    run(cpu_only.run(wish, CLIENT))
    assert cpu_only.executor.requests[0].device == "cpu"  # type: ignore[attr-defined]


def test_a_timed_pair_runs_one_side_after_the_other_and_skips_the_cache(db: Database) -> None:
    executor = CountingExecutor(delay_s=0.02)
    service = RunService(executor, OutputCache(db))  # type: ignore[arg-type]
    codes = {fw: COMPARED.snippet(fw).code for fw in ("tensorflow", "pytorch")}
    pair = run(service.pair(StepPair(LESSON, COMPARED, codes, repeat=10), CLIENT))
    assert [r.framework for r in executor.requests] == ["tensorflow", "pytorch"]
    assert all(r.repeat == 10 for r in executor.requests)
    assert run(service.cached(executor.requests)) == [None, None]
    assert pair.comparison.names.keys() == set(COMPARED.compare.names)  # type: ignore[union-attr]


def test_a_check_runs_the_code_live_and_the_solution_through_the_cache(db: Database) -> None:
    executor = CountingExecutor()
    service = RunService(executor, OutputCache(db))  # type: ignore[arg-type]
    ex = EXERCISE.exercise
    assert ex is not None
    for _ in range(2):
        outcome = run(service.check(StepCheck(LESSON, EXERCISE, ex.starter.code), CLIENT))
    codes = [r.code for r in executor.requests]
    assert codes.count(ex.solution.code) == 1 and codes.count(ex.starter.code) == 2
    # the stand-in answers each code's length: the starter passes only if as long
    assert outcome.passed == (len(ex.starter.code) == len(ex.solution.code))


# ---- the exercise checker -------------------------------------------------------------

def _valued(value: int, status: RunStatus = RunStatus.ok) -> RunResult:
    result = RunResult(status=status, framework="pytorch")
    result.captured = {name: CapturedArray(shape=[], dtype="<i8", data_b64=_int64(value))
                       for name in EXERCISE.exercise.compare}  # type: ignore[union-attr]
    return result


def test_a_matching_attempt_passes_and_a_different_one_says_which_name_differs() -> None:
    ex = EXERCISE.exercise
    assert ex is not None
    passed = judge(_valued(3), _valued(3), ex)
    assert passed.passed and passed.message == PASSED
    failed = judge(_valued(4), _valued(3), ex)
    assert not failed.passed and all(name in failed.message for name in ex.compare)


def test_an_attempt_that_raised_is_named_with_its_line_not_compared() -> None:
    ex = EXERCISE.exercise
    assert ex is not None
    crashed = RunResult.failed(RunStatus.error, "AttributeError", "no attribute", framework="pytorch")
    assert crashed.error is not None
    crashed.error.line = 14
    outcome = judge(crashed, _valued(3), ex)
    assert not outcome.passed and outcome.comparison is None
    assert outcome.message == "Your code stopped with AttributeError at line 14."
    assert judge(RunResult(status=RunStatus.timeout), _valued(3), ex).message == \
        "Your code stopped with timeout."
