"""Over HTTP, one client's flood gets 429 while another client's run still goes through."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import ROOT, Settings
from sandbox.executor import ExecutorContext
from sandbox.fairqueue import Client, FairQueue
from sandbox.protocol import RunRequest, RunResult, RunStatus
from tests.conftest import LiveServer, free_port

EXAMPLE = ROOT / "lessons" / "example"
QUICK = {"framework": "pytorch", "code": "print('ran')"}


class HeldPool:
    """Stands in for the sandbox pool: a run holds its slot until `finish` is set."""

    def __init__(self, queue: FairQueue) -> None:
        self.queue = queue
        self.finish = asyncio.Event()
        self.context = ExecutorContext()

    async def run(self, request: RunRequest, client: Client) -> RunResult:
        await self.queue.acquire(client)
        try:
            await self.finish.wait()
            return RunResult(status=RunStatus.ok, stdout="ran\n", framework=request.framework)
        finally:
            self.queue.release()


async def until(check: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_settings_caps_reach_the_pools_queue(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, packs_dir=EXAMPLE, queue_size=9,
                              queue_per_learner=3, queue_per_address=5))
    queue = app.state.sidebyside.executor.queue
    assert (queue.max_waiting, queue.max_waiting_per_learner,
            queue.max_waiting_per_address) == (9, 3, 5)


def test_a_flood_from_one_address_gets_429_while_another_client_gets_200(
        tmp_path: Path) -> None:
    pool = HeldPool(FairQueue(slots=1, max_waiting=8, max_waiting_per_learner=1,
                              max_waiting_per_address=2))
    app = create_app(Settings(data_dir=tmp_path, packs_dir=EXAMPLE), executor=pool)  # type: ignore[arg-type]

    def client_at(address: str) -> httpx.AsyncClient:
        # ASGITransport does not run the lifespan; /api/runs needs only the pool
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    async def go() -> None:
        async with client_at("10.0.0.1") as first, client_at("6.6.6.6") as hostile, \
                client_at("1.2.3.4") as other:
            held = asyncio.create_task(first.post("/api/runs", json=QUICK))
            await until(lambda: pool.queue.busy == 1)

            def flood(i: int) -> Any:
                return hostile.post("/api/runs", json=QUICK,
                                    headers={"cookie": f"sbs_learner=made-up-{i}"})

            queued = []
            for i in range(2):  # up to the address's cap, made-up learners get in line
                queued.append(asyncio.create_task(flood(i)))
                await until(lambda n=i + 1: pool.queue.waiting == n)
            for i in range(2, 12):  # then the address is refused, whatever cookie it sends
                refused = await flood(i)
                assert refused.status_code == 429, refused.text
                assert "your address already has 2 runs waiting" in refused.json()["detail"]
                assert int(refused.headers["retry-after"]) >= 1

            mine = asyncio.create_task(other.post(
                "/api/runs", json=QUICK, headers={"cookie": "sbs_learner=honest"}))
            await until(lambda: pool.queue.waiting == 3)
            twice = await other.post("/api/runs", json=QUICK,
                                     headers={"cookie": "sbs_learner=honest"})
            assert twice.status_code == 429
            assert "you already have 1 run waiting" in twice.json()["detail"]

            pool.finish.set()
            response = await mine
            assert response.status_code == 200 and response.json()["stdout"] == "ran\n"
            for task in [held, *queued]:
                assert (await task).status_code == 200
            assert pool.queue.waiting == 0 and pool.queue.busy == 0

    asyncio.run(go())


@pytest.mark.slow
def test_caps_hold_with_a_real_pool_behind_a_proxy(tmp_path: Path) -> None:
    """The real server, a real sandbox; addresses come from X-Forwarded-For (trusted
    from 127.0.0.1, as behind a local reverse proxy)."""
    server = LiveServer(Settings(host="127.0.0.1", port=free_port(), data_dir=tmp_path,
                                 packs_dir=EXAMPLE, pool_size=1, queue_size=8,
                                 queue_per_learner=1, queue_per_address=2))
    server.start()
    hold = {"framework": "pytorch", "code": "import time\ntime.sleep(2)"}

    async def go() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=90) as api:
            def post(body: dict[str, Any], address: str, learner: str) -> Any:
                return api.post("/api/runs", json=body, headers={
                    "x-forwarded-for": address, "cookie": f"sbs_learner={learner}"})

            async def pool_stats() -> dict[str, Any]:
                return (await api.get("/api/health")).json()["pool"]  # type: ignore[no-any-return]

            held = asyncio.create_task(post(hold, "10.0.0.1", "holder"))
            deadline = time.monotonic() + 30
            while (await pool_stats())["busy"] < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            queued = []
            for i in range(2):
                queued.append(asyncio.create_task(post(QUICK, "6.6.6.6", f"made-up-{i}")))
                while (await pool_stats())["queued"] < i + 1:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            for i in range(2, 8):
                refused = await post(QUICK, "6.6.6.6", f"made-up-{i}")
                assert refused.status_code == 429, refused.text
            response = await post(QUICK, "1.2.3.4", "honest")
            assert response.status_code == 200, response.text
            assert response.json()["stdout"] == "ran\n"
            for task in [held, *queued]:
                assert (await task).status_code == 200

    try:
        asyncio.run(go())
    finally:
        server.stop()
