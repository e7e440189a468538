"""`make bench`: the warm pool against a cold interpreter, in one run on one machine.

Prints, side by side:
- the cold baseline: a fresh `python` that imports both frameworks and runs the snippet;
- warm latency over HTTP per framework (p50/p95), the way a learner clicks Run:
  one request at a time, each finding a ready spare;
- back-to-back latency (no pause: spares are replaced as fast as they are used);
- a 30-run concurrent burst (half each framework): completion time and failures;
- server-side render time of a lesson page.
Ratios hold on noisy machines; absolute times don't.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = {
    "pytorch": "import torch\nx = torch.ones(3, 3)\ny = (x @ x).sum()\nprint(y.item())",
    "tensorflow": (
        "import tensorflow as tf\nx = tf.ones([3, 3])\ny = tf.reduce_sum(x @ x)\nprint(float(y))"),
}
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "3"))
WARM_RUNS = int(os.environ.get("BENCH_WARM_RUNS", "30"))
BURST = 30


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cold_baseline() -> float:
    code = "import torch, tensorflow as tf\n" + SNIPPETS["pytorch"] + "\n" + SNIPPETS["tensorflow"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    samples = []
    for _ in range(COLD_RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    # The burst stands for a classroom, but comes from one address with no
    # learner cookie: lift the per-client caps so it measures the pool.
    env = {**os.environ, "SIDEBYSIDE_PORT": str(port), "SIDEBYSIDE_DATA_DIR": data_dir,
           "SIDEBYSIDE_QUEUE_PER_LEARNER": str(BURST),
           "SIDEBYSIDE_QUEUE_PER_ADDRESS": str(BURST)}
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            pool = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()["pool"]
            if pool["spares_ready"] >= pool["slots"]:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not become ready")


def wait_for_spares(client: httpx.Client) -> None:
    for _ in range(100):
        pool = client.get("/api/health").json()["pool"]
        if pool["spares_ready"] >= pool["slots"]:
            return
        time.sleep(0.05)


def timed_run(client: httpx.Client, framework: str) -> tuple[float, bool]:
    started = time.perf_counter()
    response = client.post("/api/runs", json={"framework": framework, "code": SNIPPETS[framework]})
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, response.status_code == 200 and response.json()["status"] == "ok"


def warm_latency(client: httpx.Client, framework: str, pause: bool) -> list[float]:
    samples = []
    for _ in range(WARM_RUNS):
        if pause:
            wait_for_spares(client)
        elapsed, ok = timed_run(client, framework)
        if not ok:
            raise SystemExit(f"a warm {framework} run failed")
        samples.append(elapsed)
    return samples


def burst(url: str) -> tuple[float, int]:
    frameworks = ["pytorch", "tensorflow"] * (BURST // 2)
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client, \
            concurrent.futures.ThreadPoolExecutor(BURST) as workers:
        outcomes = list(workers.map(lambda fw: timed_run(client, fw)[1], frameworks))
    return (time.perf_counter() - started) * 1000, outcomes.count(False)


def page_render_ms(client: httpx.Client) -> list[float]:
    lessons = client.get("/api/lessons").json()
    if not lessons:
        return []
    path = f"/lessons/{lessons[0]['id']}"
    samples = []
    for _ in range(60):
        response = client.get(path)
        timing = response.headers.get("server-timing", "")
        if response.status_code != 200:
            return []
        if "dur=" in timing:
            samples.append(float(timing.split("dur=")[1].split(",")[0].split(";")[0]))
    return samples[10:]


def main() -> None:
    print(f"sidebyside bench: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    cold = cold_baseline()
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = start_server(port, data_dir)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                device = client.get("/api/health").json()["device"]
                warm = {fw: warm_latency(client, fw, pause=True) for fw in SNIPPETS}
                back_to_back = {fw: warm_latency(client, fw, pause=False) for fw in SNIPPETS}
                wait_for_spares(client)
                burst_ms, failures = burst(url)
                render = page_render_ms(client)
        finally:
            server.terminate()
            server.wait(timeout=60)

    print(f"device: {device}\n")
    print(f"{'measure':<44}{'value':>12}{'baseline / floor':>22}{'ratio':>10}")
    cold_label = "cold: fresh python, both frameworks, snippet"
    print(f"{cold_label:<44}{cold:>10.0f}ms{'':>22}{'1.0x':>10}")
    floors = {"pytorch": 50, "tensorflow": 150}
    for fw, samples in warm.items():
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        print(f"{f'warm {fw} p50 over HTTP':<44}{p50:>10.1f}ms{f'floor {floors[fw]} ms':>22}"
              f"{cold / p50:>9.0f}x")
        print(f"{f'warm {fw} p95 over HTTP':<44}{p95:>10.1f}ms{'':>22}{cold / p95:>9.0f}x")
    for fw, samples in back_to_back.items():
        p50 = statistics.median(samples)
        print(f"{f'back-to-back {fw} p50 (no pause)':<44}{p50:>10.1f}ms{'':>22}{cold / p50:>9.0f}x")
    cold_burst = cold * BURST / (os.cpu_count() or 1)
    print(f"{f'burst of {BURST} (half each), completion':<44}{burst_ms:>10.0f}ms"
          f"{f'cold ≈ {cold_burst:.0f} ms':>22}{cold_burst / burst_ms:>9.1f}x")
    print(f"{f'burst of {BURST}, failures':<44}{failures:>12}{'floor 0':>22}")
    if render:
        print(f"{'lesson page render p50 (server-side)':<44}{statistics.median(render):>10.1f}ms"
              f"{'floor 20 ms':>22}")
    else:
        print(f"{'lesson page render p50 (server-side)':<44}{'n/a':>12}")


if __name__ == "__main__":
    main()
