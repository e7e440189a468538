"""The pool's own lifecycle with real processes: backpressure, crashes, shutdown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.settings import ROOT
from sandbox.fairqueue import Client, FairQueue, QueueFull
from sandbox.limits import Limits
from sandbox.memory import children
from sandbox.pool import Pool
from sandbox.protocol import RunRequest, RunStatus

SLEEP = RunRequest(framework="pytorch", code="import time\ntime.sleep(1.5)\nprint('slept')")
QUICK = RunRequest(framework="pytorch", code="print('hi')")


def _c(learner: str, address: str = "10.0.0.1") -> Client:
    return Client(learner, address)


def test_slots_go_round_robin_between_clients() -> None:
    async def scenario() -> list[str]:
        queue = FairQueue(slots=1, max_waiting=10, max_waiting_per_learner=10,
                          max_waiting_per_address=10)
        await queue.acquire(_c("holder"))
        order: list[str] = []

        async def one(client: str) -> None:
            await queue.acquire(_c(client))
            order.append(client)
            queue.release()

        tasks = [asyncio.create_task(one(c)) for c in ("a", "a", "a", "b", "c")]
        await asyncio.sleep(0)
        assert queue.position(_c("b")) == 2 and queue.position(_c("zzz")) is None
        queue.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "a", "a"]


def test_full_queue_refuses_with_a_retry_time() -> None:
    async def scenario() -> None:
        queue = FairQueue(slots=1, max_waiting=1, max_waiting_per_learner=1,
                          max_waiting_per_address=1)
        await queue.acquire(_c("a"))
        waiter = asyncio.create_task(queue.acquire(_c("b", "10.0.0.2")))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as refused:
            await queue.acquire(_c("c", "10.0.0.3"))
        assert refused.value.retry_after_s >= 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert queue.waiting == 0

    asyncio.run(scenario())


@pytest.mark.slow
def test_pool_backpressure_crash_recovery_and_shutdown() -> None:
    """One pool (starting one costs seconds), several lifecycle checks in order."""

    async def scenario() -> None:
        pool = Pool(Limits(wall_s=5), size=1, queue_size=1)
        await pool.start()
        try:
            # 1. One running, one queued, the third is refused: no unbounded wait.
            first = asyncio.create_task(pool.run(SLEEP, _c("a")))
            await asyncio.sleep(0.2)
            second = asyncio.create_task(pool.run(SLEEP, _c("b")))
            await asyncio.sleep(0.2)
            with pytest.raises(QueueFull):
                await pool.run(QUICK, _c("c"))
            assert (await first).stdout == "slept\n" and (await second).status == RunStatus.ok

            # 2. The template dies mid-run: that run says so, the next one works.
            in_flight = asyncio.create_task(pool.run(SLEEP, _c("a")))
            await asyncio.sleep(0.5)
            assert pool.templates["pytorch"].process is not None
            os.kill(pool.templates["pytorch"].process.pid, signal.SIGKILL)
            lost = await in_flight
            assert lost.status == RunStatus.killed and lost.error is not None
            # Only PyTorch's template died: TensorFlow's runs go on meanwhile.
            other = await pool.run(RunRequest(framework="tensorflow", code="print('tf')"), _c("b"))
            assert other.stdout == "tf\n" and pool.stats().template_restarts == 1
            for _ in range(100):  # the replacement template imports torch again
                if pool.stats().spares_ready:
                    break
                await asyncio.sleep(0.3)
            again = await pool.run(QUICK, _c("a"))
            assert again.status == RunStatus.ok and pool.stats().template_restarts == 1

            # 3. Shutdown: the running run drains, the queued one is told why.
            running = asyncio.create_task(pool.run(SLEEP, _c("a")))
            await asyncio.sleep(0.2)
            queued = asyncio.create_task(pool.run(QUICK, _c("b")))
            await asyncio.sleep(0.1)
            await pool.stop(drain_s=10)
            assert (await running).status == RunStatus.ok
            refused = await queued
            assert refused.status == RunStatus.rejected and "shutting down" in refused.error.message
            assert (await pool.run(QUICK, _c("c"))).status == RunStatus.rejected
        finally:
            await pool.stop()

    asyncio.run(scenario())


def _template(bwrap: int) -> int:
    """bwrap, then bwrap as the pid namespace's init, then the template."""
    pid = bwrap
    while Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"bwrap"):
        (pid,) = children(pid)
    return pid


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_runs_die_with_the_template_that_supervises_them_and_failed_restarts_are_retried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    long_sleep = RunRequest(framework="pytorch", code="import time\ntime.sleep(60)", timeout_s=30)

    async def scenario() -> None:
        pool = Pool(Limits(wall_s=5), size=1)
        await pool.start()
        try:
            # 1. A template killed from outside takes its runs with it (PR_SET_PDEATHSIG),
            #    the run in flight is told, and the pool starts a new template.
            in_flight = asyncio.create_task(pool.run(long_sleep, _c("a")))
            await asyncio.sleep(1.0)
            assert pool.templates["pytorch"].process is not None
            template = _template(pool.templates["pytorch"].process.pid)
            runs = children(template)
            assert runs
            os.kill(template, signal.SIGKILL)
            await asyncio.sleep(1.0)
            assert not any(_alive(run) for run in runs)
            lost = await asyncio.wait_for(in_flight, 5)
            assert lost.status == RunStatus.killed
            for _ in range(300):
                if pool.stats().spares_ready and pool.stats().degraded is None:
                    break
                await asyncio.sleep(0.2)
            assert (await pool.run(QUICK, _c("a"))).stdout == "hi\n"

            # 2. A template that can't start again: logged, retried with back-off, reported.
            from sandbox import launcher

            real_argv = launcher.template_argv
            monkeypatch.setattr(launcher, "template_argv",
                                lambda *a, **k: [sys.executable, "-c", "raise SystemExit(3)"])
            os.kill(pool.templates["pytorch"].process.pid, signal.SIGKILL)
            for _ in range(100):
                if (pool.stats().degraded or "").startswith("template restart failed"):
                    break
                await asyncio.sleep(0.1)
            assert (pool.stats().degraded or "").startswith("template restart failed")
            refused = await asyncio.wait_for(pool.run(QUICK, _c("a")), 2)
            assert refused.status == RunStatus.killed and "restarting" in refused.error.message
            monkeypatch.setattr(launcher, "template_argv", real_argv)
            for _ in range(200):  # the TensorFlow template served on all along
                if pool.stats().reserve["pytorch"].ready:
                    break
                await asyncio.sleep(0.2)
            assert (await pool.run(QUICK, _c("a"))).stdout == "hi\n"
            assert pool.stats().template_restarts >= 2 and pool.stats().degraded is None
        finally:
            await pool.stop()

    asyncio.run(scenario())


UNDER_TMP_SCRIPT = """
import asyncio, sandbox
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.memory import children
from sandbox.pool import Pool
from sandbox.protocol import RunRequest
print(sandbox.__file__)
async def main():
    pool = Pool(Limits(), size=1)
    await pool.start()
    for framework, code in (("pytorch", "import torch\\nprint(int(torch.ones(3).sum()))"),
                            ("tensorflow", "import tensorflow as tf\\nprint(int(tf.reduce_sum(tf.ones(4))))")):
        result = await pool.run(RunRequest(framework=framework, code=code), Client("t", "local"))
        print(result.status.value, result.stdout.strip(), result.error)
    await pool.stop()
asyncio.run(main())
"""


@pytest.mark.slow
def test_a_checkout_and_venv_under_tmp_run() -> None:
    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="sbs-checkout-"))
    try:
        shutil.copytree(ROOT / "sandbox", top / "sandbox",
                        ignore=shutil.ignore_patterns("__pycache__"))
        venv = top / ".venv"
        subprocess.run([Path(sys.base_prefix) / "bin" / "python3", "-m", "venv", "--without-pip",
                        venv], check=True)
        # The frameworks come from the project's own site-packages, named by a .pth file.
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "frameworks.pth").write_text(
            "\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
        os.chmod(top, 0o755)
        out = subprocess.run([venv / "bin" / "python", "-c", UNDER_TMP_SCRIPT], cwd=top,
                             env={"PATH": os.environ["PATH"], "PYTHONPATH": str(top)},
                             capture_output=True, text=True, timeout=300)
        lines = out.stdout.splitlines()
        assert lines == [f"{top}/sandbox/__init__.py", "ok 3 None", "ok 4 None"], out.stderr[-3000:]
    finally:
        shutil.rmtree(top, ignore_errors=True)


QUIET_SCRIPT = """
import asyncio
from sandbox.fairqueue import Client
from sandbox.limits import Limits
from sandbox.pool import Pool
from sandbox.protocol import RunRequest
CODES = ["print('hi')", "raise ValueError('no')", "import time\\ntime.sleep(5)",
         "import os\\nos._exit(3)", "print('x' * 300000)"]
async def main():
    pool = Pool(Limits(wall_s=1), size=2)
    await pool.start()
    runs = [pool.run(RunRequest(framework="pytorch", code=code), Client(str(i), "local"))
            for i, code in enumerate(CODES * 4)]
    results = await asyncio.gather(*runs)
    print(sorted({r.status.value for r in results}))
    await pool.stop()
asyncio.run(main())
"""


@pytest.mark.slow
def test_the_template_logs_no_error_over_runs_that_end_every_way() -> None:
    # A supervisor's error is caught in the template's loop and printed; it
    # must not happen at all, even when a run's pipes close in the same batch
    # of events that ended it.
    out = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "['error', 'killed', 'ok', 'output_limit', 'timeout']", out.stderr
    assert "Traceback" not in out.stderr, out.stderr[-3000:]


@pytest.mark.slow
def test_a_burst_is_served_from_the_reserve_which_fills_up_behind_it() -> None:
    async def scenario() -> None:
        pool = Pool(Limits(), size=2, spares_memory_mb=200)
        for _ in range(40):
            pool.reserve.record("pytorch")
        await pool.start()
        try:
            target = pool.reserve.targets()["pytorch"]
            assert target >= 12
            for _ in range(300):
                if pool.stats().reserve["pytorch"].ready >= target:
                    break
                await asyncio.sleep(0.2)
            burst = await asyncio.gather(*(pool.run(QUICK, _c(f"learner-{i}")) for i in range(8)))
            assert all(r.stdout == "hi\n" for r in burst)
            during = pool.stats().reserve["pytorch"]
            # nothing was forked while the burst ran: it drew on the reserve
            assert during.ready == target - 8 and during.warming == 0, during
            for _ in range(300):
                if pool.stats().reserve["pytorch"].ready >= target:
                    break
                await asyncio.sleep(0.1)
            assert pool.stats().reserve["pytorch"].ready == target  # then it filled up
        finally:
            await pool.stop()

    asyncio.run(scenario())


def test_only_snippets_that_configure_tensorflows_runtime_need_a_fresh_spare() -> None:
    from sandbox.reserve import needs_fresh_runtime

    configures = ("tf.config.set_logical_device_configuration(cpu, [c, c])",
                  "tf.config.experimental.set_memory_growth(gpu, True)",
                  "tf.config.threading.set_intra_op_parallelism_threads(1)",
                  "tf.config.set_visible_devices([], 'GPU')")
    assert all(needs_fresh_runtime("tensorflow", code) for code in configures)
    assert not needs_fresh_runtime("pytorch", configures[0])  # torch has no such rule
    assert not needs_fresh_runtime("tensorflow", "tf.config.list_logical_devices('CPU')")
