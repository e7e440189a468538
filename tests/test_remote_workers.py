"""Remote workers end to end: a real Redis, real `sidebyside worker` processes, a real server.

Two CPU workers share the module (each starts one template); the test that
kills one restarts it, so it runs last.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.pipeline.requests import build_request
from app.settings import ROOT, Settings
from sandbox.protocol import RunRequest
from sandbox.remote.celeryapp import (
    BEAT_EVERY_S,
    BEAT_PREFIX,
    BEAT_TTL_S,
    RUN_TASK,
    make_celery,
    queue_for,
)
from sandbox.remote.client import TRANSPORT_GRACE_S
from sandbox.remote.messages import RemoteRun
from sandbox.remote.signing import Signer

pytestmark = pytest.mark.slow
SECRET = "a-secret-the-web-and-its-workers-share"
START_S = 300  # two templates importing both frameworks at once on a busy machine
RUN_GRACE_S = 2.0 + TRANSPORT_GRACE_S  # the pool's grace and the transport's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(timeout=10)


class Worker:
    """One `sidebyside worker` process, by name, that can be killed and started again."""

    def __init__(self, name: str, redis_url: str, log: Path) -> None:
        self.name, self.node, self.redis_url, self.log = name, f"celery@{name}", redis_url, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "SIDEBYSIDE_BROKER_URL": self.redis_url,
               "SIDEBYSIDE_WORKER_SECRET": SECRET, "SIDEBYSIDE_POOL_SIZE": "2", "SIDEBYSIDE_SPARES_MEMORY_MB": "300"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker", "--device", "cpu", "--name",
                 self.name], cwd=ROOT, env=env, stdout=out, stderr=out)

    def registered(self) -> bool:
        return redis.Redis.from_url(self.redis_url).exists(f"{BEAT_PREFIX}cpu:{self.node}") == 1

    def wait_registered(self) -> None:
        deadline = time.monotonic() + START_S
        while not self.registered():
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{self.name} did not register"
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    logs = tmp_path_factory.mktemp("workers")
    both = [Worker(name, redis_url, logs / f"{name}.log") for name in ("cpu-a", "cpu-b")]
    for worker in both:
        worker.start()
    try:
        for worker in both:
            worker.wait_registered()
        yield both
    finally:
        for worker in both:
            worker.stop()


@pytest.fixture(scope="module")
def web_app(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = Settings(host="127.0.0.1", port=free_port(), data_dir=tmp_path_factory.mktemp("d"),
                        packs_dir=ROOT / "lessons", broker_url=redis_url, run_timeout_s=10.0,
                        queue_per_learner=30, queue_per_address=64, worker_secret=SECRET,
                        worker_max_slots=4)
    return create_app(settings)


@pytest.fixture(scope="module")
def web(web_app: FastAPI, workers: list[Worker]) -> Iterator[httpx.Client]:
    settings = web_app.state.sidebyside.settings
    server = uvicorn.Server(uvicorn.Config(web_app, host=settings.host, port=settings.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://{settings.host}:{settings.port}", timeout=90) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                if len(client.get("/api/health").json()["workers"]) == len(workers):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server never saw the workers"
            time.sleep(0.1)
        yield client
    server.should_exit = True
    thread.join(timeout=30)


def run(web: httpx.Client, framework: str, code: str, **extra: object) -> dict:
    response = web.post("/api/runs", json={"framework": framework, "code": code, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_runs_cross_the_queue_in_both_frameworks_and_say_which_worker_ran_them(
        web: httpx.Client, workers: list[Worker]) -> None:
    torch_run = run(web, "pytorch", "import torch\nx = torch.arange(6.).reshape(2, 3)\nprint(x.sum().item())")
    tf_run = run(web, "tensorflow", "import tensorflow as tf\ny = tf.ones([2]) * 3\nprint(y.numpy().tolist())")
    assert torch_run["status"] == "ok" and torch_run["stdout"] == "15.0\n", torch_run
    assert tf_run["status"] == "ok" and tf_run["stdout"] == "[3.0, 3.0]\n", tf_run
    nodes = {w.node for w in workers}
    for result in (torch_run, tf_run):
        assert result["worker"] in nodes
        assert result["device"] and result["versions"]["torch"].startswith("2.13")
    assert {v["name"] for v in torch_run["values"]} == {"x"}


def test_a_pair_compares_arrays_that_came_back_through_redis(web: httpx.Client) -> None:
    body = {"tensorflow": "import tensorflow as tf\ny = tf.linspace(0., 1., 5) ** 2",
            "pytorch": "import torch\ny = torch.linspace(0, 1, 5) ** 2", "compare": ["y"]}
    pair = web.post("/api/pairs", json=body).json()
    assert pair["comparison"]["match"] is True, pair
    assert pair["comparison"]["names"]["y"]["shapes"] == [[5], [5]]


def test_health_lists_each_worker_with_its_device_versions_and_capacity(
        web: httpx.Client, workers: list[Worker]) -> None:
    health = web.get("/api/health").json()
    listed = {w["name"]: w for w in health["workers"]}
    assert set(listed) == {w.node for w in workers}
    for worker in listed.values():
        assert worker["device"] == "cpu" and worker["device_name"]
        assert worker["slots"] == 2 and 0 <= worker["free"] <= 2
        assert worker["versions"]["tensorflow"].startswith("2.21")
        assert worker["sandbox"] == "bubblewrap+namespaces+seccomp"
    assert health["status"] == "ok" and health["pool"]["devices"]["cpu"]["slots"] == 4
    assert health["pool"]["devices"]["gpu"]["slots"] == 0


def test_an_api_run_asking_for_a_gpu_runs_on_a_cpu_worker_while_none_is_registered(
        web: httpx.Client) -> None:
    # /api/runs takes the one run pipeline, which routes a GPU wish to a CPU while no GPU
    # worker serves (a run for a device that nothing serves is refused: the no-Redis test)
    result = run(web, "pytorch", "print(1)", device="gpu")
    assert result["status"] == "ok" and result["stdout"] == "1\n"
    assert result["worker"] in ("celery@cpu-a", "celery@cpu-b")
    assert web.get("/lessons/tensors").status_code == 200


def test_the_devices_lesson_asks_for_a_gpu_and_runs_on_a_cpu_worker_while_none_is_registered(
        web: httpx.Client, web_app: FastAPI) -> None:
    lesson = web_app.state.sidebyside.catalog.lesson("devices")
    assert lesson.device == "gpu"
    step = lesson.steps[0]
    runs = web_app.state.sidebyside.runs
    wish = build_request("pytorch", step.pytorch.code, lesson=lesson, step=step)
    assert wish.device == "gpu" and runs.routed(wish).device == "cpu"
    assert runs.cache_key(wish) == runs.cache_key(wish.model_copy(update={"device": "cpu"}))
    result = run(web, "pytorch", step.pytorch.code, device="gpu")  # /api/runs routes it too
    assert result["status"] == "ok", result["error"]


def test_without_redis_pages_are_served_and_runs_are_refused_at_once(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = Settings(host="127.0.0.1", port=free_port(), data_dir=tmp_path_factory.mktemp("n"),
                        packs_dir=ROOT / "lessons", broker_url=nowhere, worker_secret=SECRET)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host,
                                           port=settings.port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://{settings.host}:{settings.port}", timeout=30) as http:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    health = http.get("/api/health").json()
                    if health["degraded"]:
                        break
                assert time.monotonic() < deadline, "the server never said it was degraded"
                time.sleep(0.2)
            assert health["status"] == "degraded" and "Redis unreachable" in health["degraded"]
            assert http.get("/lessons/tensors").status_code == 200
            started = time.monotonic()
            refused = run(http, "pytorch", "print(1)")
            assert time.monotonic() - started < 1.0
            assert refused["status"] == "rejected"
            assert refused["error"]["message"] == "no worker available for cpu"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_web_server_with_a_broker_needs_no_sandbox_of_its_own(redis_url: str,
                                                                  tmp_path: Path) -> None:
    # No bubblewrap on its PATH: it runs no snippet, so it starts all the same
    # (in a container it keeps Docker's default confinement); without a broker
    # the same server refuses to start.
    port = free_port()
    env = {**os.environ, "PATH": str(tmp_path), "SIDEBYSIDE_PORT": str(port),
           "SIDEBYSIDE_DATA_DIR": str(tmp_path / "data"), "SIDEBYSIDE_BROKER_URL": redis_url,
           "SIDEBYSIDE_WORKER_SECRET": SECRET}
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                               stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        health = None
        while health is None and time.monotonic() < deadline:
            assert web.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
            time.sleep(0.2)
        assert health is not None and health.status_code == 200, log.read_text()[-3000:]
        assert "workers" in health.json()
    finally:
        web.terminate()
        web.wait(timeout=30)
    del env["SIDEBYSIDE_BROKER_URL"]
    local = subprocess.run([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert local.returncode == 2
    assert "cannot isolate runs: bubblewrap (bwrap) is not installed" in local.stderr


def test_a_forged_heartbeat_is_not_listed(web: httpx.Client, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{BEAT_PREFIX}gpu:forged", b'{"name": "forged", "device": "gpu", "slots": 9999}',
               ex=30)
    try:
        time.sleep(1.5)  # a poll or two
        health = web.get("/api/health").json()
        assert "forged" not in {w["name"] for w in health["workers"]}
        assert health["pool"]["devices"]["gpu"]["slots"] == 0
    finally:
        client.delete(f"{BEAT_PREFIX}gpu:forged")


# A forger that beats as a GPU worker (claiming 50 slots, unfenced) and answers every run
# with a forgery. With the workers' secret it is a compromised worker host; with another,
# anyone who can write to Redis.
FORGER = """
import json, sys, threading, time
import redis
from sandbox.remote.messages import WorkerBeat
from sandbox.remote.celeryapp import BEAT_PREFIX, RUN_TASK, make_celery, queue_for
from sandbox.remote.signing import Signer

url, beats, answers = sys.argv[1], Signer(sys.argv[2]), Signer(sys.argv[3])
celery = make_celery(url)
SVG = "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script><g/></svg>"
FORGED = {
    "huge": {"type": "result", "result": {"status": "ok", "stdout": "x" * (4 * 2**20 + 1)}},
    "svg": {"type": "result", "result": {"status": "ok", "graphs": [
        {"kind": "structure", "title": "t", "svg": SVG, "nodes": 1}]}},
}

@celery.task(name=RUN_TASK, bind=True)
def run(task, payload):
    body = json.dumps(FORGED.get(payload["request"]["code"], {"not": "a result"}))
    return answers.seal("result", body, bound_to=str(task.request.id)).model_dump()

def beat():
    beat = WorkerBeat(name="celery@forger", device="gpu", device_name="forged", slots=50,
                      busy=0, free=50, sandbox="insecure").model_dump_json()
    while True:
        sealed = beats.seal("beat", beat).model_dump_json()
        redis.Redis.from_url(url).set(BEAT_PREFIX + "gpu:celery@forger", sealed, px=6000)
        time.sleep(1)

threading.Thread(target=beat, daemon=True).start()
celery.Worker(hostname="celery@forger", pool_cls="threads", concurrency=1,
              queues=[queue_for("gpu")], loglevel="WARNING", without_mingle=True,
              without_gossip=True, without_heartbeat=True).start()
"""


@contextlib.contextmanager
def forging(redis_url: str, beat_secret: str, result_secret: str) -> Iterator[None]:
    forger = subprocess.Popen([sys.executable, "-c", FORGER, redis_url, beat_secret,
                               result_secret], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        forger.kill()
        forger.wait(timeout=10)
        redis.Redis.from_url(redis_url).delete(f"{BEAT_PREFIX}gpu:celery@forger")


def wait_listed(web: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not (health := web.get("/api/health").json())["pool"]["devices"]["gpu"]["slots"]:
        assert time.monotonic() < deadline, "the forger was never listed"
        time.sleep(0.2)
    return health  # type: ignore[no-any-return]


def wait_unlisted(web: httpx.Client) -> None:
    deadline = time.monotonic() + 10
    while web.get("/api/health").json()["pool"]["devices"]["gpu"]["slots"]:
        assert time.monotonic() < deadline, "the forger stayed listed"
        time.sleep(0.2)


def test_a_worker_beating_without_the_secret_is_never_listed(web: httpx.Client,
                                                             redis_url: str) -> None:
    with forging(redis_url, "not-the-workers-secret", "not-the-workers-secret"):
        time.sleep(3)  # two polls and more, with fresh beats
        health = web.get("/api/health").json()
        assert health["pool"]["devices"]["gpu"]["slots"] == 0
        assert "celery@forger" not in {w["name"] for w in health["workers"]}
        assert health["insecure"] is False


def test_results_signed_without_the_secret_are_refused(web: httpx.Client,
                                                       redis_url: str) -> None:
    # A worker that beats with the secret, whose answers someone else wrote into Redis.
    with forging(redis_url, SECRET, "not-the-workers-secret"):
        wait_listed(web)
        answer = run(web, "pytorch", "svg", device="gpu")
        assert answer["status"] == "killed" and answer["error"]["type"] == "ProtocolError"
        assert "bad signature" in answer["error"]["message"] and answer["graphs"] == []
    wait_unlisted(web)


def test_results_from_a_forging_worker_are_checked_like_any_run(web: httpx.Client,
                                                                 redis_url: str) -> None:
    forger = contextlib.ExitStack()
    forger.enter_context(forging(redis_url, SECRET, SECRET))
    try:
        health = wait_listed(web)
        # it claims 50 slots, and counts for the web's cap; it runs unfenced: flagged
        assert health["pool"]["devices"]["gpu"]["slots"] == 4 and health["insecure"] is True
        assert "Snippets run without a sandbox" in web.get("/").text
        huge = run(web, "pytorch", "huge", device="gpu")
        assert huge["status"] == "killed" and huge["error"]["type"] == "ProtocolError"
        assert huge["stdout"] == ""
        nonsense = run(web, "pytorch", "anything else", device="gpu")
        assert nonsense["status"] == "killed" and nonsense["error"]["type"] == "ProtocolError"
        drawn = run(web, "pytorch", "svg", device="gpu")
        assert drawn["status"] == "ok" and drawn["worker"] == ""  # it named no worker
        assert "script" not in drawn["graphs"][0]["svg"]
    finally:
        forger.close()
        wait_unlisted(web)


def test_a_run_that_expired_before_a_worker_took_it_is_dropped_unrun(redis_url: str,
                                                                     workers: list[Worker]) -> None:
    # Sent straight to the queue the way the web sends one, with its deadline past.
    late = RemoteRun(request=RunRequest(framework="pytorch", code="print('ran')"),
                     deadline=time.time() - 1)
    celery = make_celery(redis_url)
    sent = celery.send_task(RUN_TASK, args=[late.model_dump(mode="json")], queue=queue_for("cpu"))
    answer = json.loads(Signer(SECRET).open("result", sent.get(timeout=30), bound_to=sent.id,
                                            max_age_s=60))
    assert answer["result"]["status"] == "rejected" and answer["result"]["stdout"] == ""
    assert answer["result"]["error"]["type"] == "Expired"


def test_a_burst_of_30_is_split_over_both_workers_and_none_is_lost(
        web: httpx.Client, workers: list[Worker]) -> None:
    code = "import torch\nprint(torch.ones(4).sum().item())"

    def one(i: int) -> dict:
        return run(web, "pytorch" if i % 3 else "tensorflow",
                   code if i % 3 else "import tensorflow as tf\nprint(float(tf.reduce_sum(tf.ones([4]))))",
                   timeout_s=30)

    with concurrent.futures.ThreadPoolExecutor(30) as threads:
        results = list(threads.map(one, range(30)))
    assert [r["status"] for r in results] == ["ok"] * 30, [r["error"] for r in results]
    assert {r["stdout"] for r in results} == {"4.0\n"}
    assert {r["worker"] for r in results} == {w.node for w in workers}


def test_a_worker_killed_mid_run_fails_the_run_in_time_and_rejoins_when_restarted(
        web: httpx.Client, web_app: FastAPI, workers: list[Worker]) -> None:
    timeout_s = 20.0
    answer: dict = {}
    deadline = time.monotonic() + 120
    # Beats come every 2 s: wait for the earlier tests' runs to leave them, and for the
    # lesson outputs their page views precompute (one at a time, whenever the workers
    # are idle), so the worker seen busy below is the one running this run.
    # A beat can be up to 2 s old: the workers must look idle for longer than two
    # beats, or one that took a late run just before this one would be seen busy too.
    precomputing = web_app.state.sidebyside.runs.precomputing
    idle_since = None
    while idle_since is None or time.monotonic() - idle_since < 2 * BEAT_EVERY_S + 0.5:
        assert time.monotonic() < deadline, "the workers stayed busy"
        idle = not precomputing.pending and not any(
            w["busy"] for w in web.get("/api/health").json()["workers"])
        idle_since = (idle_since or time.monotonic()) if idle else None
        time.sleep(0.1)
    asked = time.monotonic()
    sleeper = threading.Thread(target=lambda: answer.update(run(
        web, "pytorch", "import time\nprint('started', flush=True)\ntime.sleep(60)",
        timeout_s=timeout_s)))
    sleeper.start()
    deadline = time.monotonic() + 15
    busy = None
    while busy is None:  # the worker that took it says so in its heartbeat
        assert time.monotonic() < deadline, "no worker took the run"
        listed = web.get("/api/health").json()["workers"]
        busy = next((w["name"] for w in listed if w["busy"] > 0), None)
        time.sleep(0.1)
    victim = next(w for w in workers if w.node == busy)
    victim.kill()
    killed_at = time.monotonic()
    sleeper.join(timeout=timeout_s + RUN_GRACE_S + 5)
    answered_at = time.monotonic()
    assert answer, "no answer"
    assert answer["status"] == "killed" and answer["error"]["type"] == "WorkerLost", answer
    assert answer["worker"] == victim.node
    # Found by its missing heartbeat, well before the run's own time limit ran out.
    assert answered_at - killed_at < BEAT_TTL_S + 3
    assert answered_at - asked < timeout_s + RUN_GRACE_S

    victim.start()
    victim.wait_registered()
    deadline = time.monotonic() + 10
    while victim.node not in {w["name"] for w in web.get("/api/health").json()["workers"]}:
        assert time.monotonic() < deadline, "the restarted worker was not listed again"
        time.sleep(0.2)
    results = [run(web, "pytorch", "print(2)") for _ in range(6)]
    assert {r["status"] for r in results} == {"ok"}


def test_a_worker_told_to_stop_leaves_the_list_at_once(web: httpx.Client,
                                                       workers: list[Worker]) -> None:
    leaving = workers[0]
    assert leaving.process is not None
    leaving.process.terminate()
    deadline = time.monotonic() + 3  # well before its heartbeat would expire
    while leaving.registered():
        assert time.monotonic() < deadline, "the stopping worker kept its heartbeat"
        time.sleep(0.05)
    while leaving.node in {w["name"] for w in web.get("/api/health").json()["workers"]}:
        assert time.monotonic() < deadline + 2, "the web still lists a worker that left"
        time.sleep(0.1)
    assert leaving.process.wait(timeout=30) == 0
