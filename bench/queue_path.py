"""`make bench`, the queue path: the same runs through Redis and a worker, against the local pool.

A real `redis-server`, one `sidebyside worker` and a second web server with
SIDEBYSIDE_BROKER_URL; runs alternate between the two servers, one at a
time with the same pause after each (the reserves refill in it), so the
noise of a shared machine falls on both alike.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAUSE_S = 0.5  # after each run: both pools refill their reserve in it
START_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError, KeyError):
            if ready():
                return
        time.sleep(0.3)
    raise SystemExit(f"{what} did not become ready")


@contextlib.contextmanager
def remote_server(data_dir: str, env: dict[str, str]) -> Iterator[str]:
    """Redis, one worker and a web server that sends its runs to it; yields the server's URL."""
    redis_port, web_port = free_port(), free_port()
    broker = {"SIDEBYSIDE_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
              "SIDEBYSIDE_WORKER_SECRET": "the-bench-web-and-worker-secret"}
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", data_dir]
    web_env = {**env, **broker, "SIDEBYSIDE_PORT": str(web_port),
               "SIDEBYSIDE_DATA_DIR": str(Path(data_dir) / "remote")}
    url = f"http://127.0.0.1:{web_port}"
    with running(redis_argv, {}), \
            running([sys.executable, "-m", "app.cli", "worker", "--device", "cpu"],
                    {**env, **broker}), \
            running([sys.executable, "-m", "app.cli", "serve"], web_env):
        wait_until(lambda: bool(httpx.get(f"{url}/api/health", timeout=2).json()["workers"]),
                   "the worker")
        yield url


def run_ms(client: httpx.Client, framework: str, code: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/runs", json={"framework": framework, "code": code})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or response.json()["status"] != "ok":
        raise SystemExit(f"a {framework} run failed: {response.text[:300]}")
    return elapsed


def side_by_side(local_url: str, data_dir: str, env: dict[str, str],
                 snippets: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """Per framework: (p50 through the local pool, p50 through Redis and a worker), in ms."""
    medians = {}
    with remote_server(data_dir, env) as remote_url, \
            httpx.Client(base_url=local_url, timeout=120) as local, \
            httpx.Client(base_url=remote_url, timeout=120) as remote:
        for framework, code in snippets.items():
            # As in run.py's paced runs: thirty runs first, so each reserve's mix has
            # followed this framework's demand before anything is measured.
            for client in (local, remote) * 30:
                run_ms(client, framework, code)
            time.sleep(2.0)
            samples: dict[str, list[float]] = {"local": [], "remote": []}
            for _ in range(runs):
                for name, client in (("local", local), ("remote", remote)):
                    samples[name].append(run_ms(client, framework, code))
                    time.sleep(PAUSE_S)
            medians[framework] = (statistics.median(samples["local"]),
                                  statistics.median(samples["remote"]))
    return medians
