"""`make bench`: the warm pool against a cold interpreter, in one run on one machine.

Prints, side by side:
- the cold baseline: a fresh `python` that imports both frameworks and runs the snippet;
- single-run latency over HTTP per framework (p50/p95), the way a learner clicks Run:
  one request at a time, each finding the reserve full;
- back-to-back latency (no pause: spares are replaced as fast as they are used),
  right after that framework's paced runs;
- how long a spare takes to refill after a run, and the sandbox's CPU per run with
  its replacement spare included, per framework;
- bursts of 30 concurrent runs (mixed, PyTorch only, TensorFlow only) against one
  cold start, and their failures;
- the pool's memory (PSS) and its reserve of ready spares;
- server-side render time of a lesson page;
- the queue path: runs through Redis and a `sidebyside worker`, alternated with
  the same runs through the local pool (bench/queue_path.py).
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
import queue_path  # bench/queue_path.py, beside this script

from sandbox.memory import children

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
            if all(r["ready"] >= r["target"] for r in pool["reserve"].values()):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not become ready")


def reserve(client: httpx.Client) -> dict[str, dict[str, int]]:
    return client.get("/api/health").json()["pool"]["reserve"]  # type: ignore[no-any-return]


def wait_for_spares(client: httpx.Client, frameworks: tuple[str, ...] = tuple(SNIPPETS),
                    timeout_s: float = 30) -> float:
    """Wait until each framework's ready spares are back to target; seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        now = reserve(client)
        if all(now[fw]["ready"] >= now[fw]["target"] for fw in frameworks):
            break
        time.sleep(0.005)
    return time.perf_counter() - started


def sandbox_cpu_s(server_pid: int) -> float:
    """CPU seconds of the sandbox's processes: bwrap, the template and everything it reaped."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    todo = children(server_pid)
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat; the template reaps its
        # supervisors (which reap their runs), so finished runs are in its c-times
        total += sum(int(f) for f in fields[11:15]) / tick
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"sandbox.template" in argv and not argv[0].endswith(b"bwrap"):
            continue  # live spares are counted when reaped; reading them twice would not add up
        todo += children(pid)
    return total


def timed_run(client: httpx.Client, framework: str) -> tuple[float, bool]:
    started = time.perf_counter()
    response = client.post("/api/runs", json={"framework": framework, "code": SNIPPETS[framework]})
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, response.status_code == 200 and response.json()["status"] == "ok"


def paced_runs(client: httpx.Client, framework: str, server_pid: int) -> dict[str, float]:
    """One run at a time, each waiting for the reserve: latency, refill time, CPU per run.

    Measured once the reserve's mix has followed the demand (thirty runs first),
    so retiring the other framework's spares is not counted against these.
    """
    for _ in range(30):
        timed_run(client, framework)
    wait_for_spares(client)
    time.sleep(0.2)
    latencies, refills = [], []
    cpu_before = sandbox_cpu_s(server_pid)
    for _ in range(WARM_RUNS):
        elapsed, ok = timed_run(client, framework)
        if not ok:
            raise SystemExit(f"a warm {framework} run failed")
        latencies.append(elapsed)
        refills.append(wait_for_spares(client, (framework,)) * 1000)
    time.sleep(0.2)  # the last supervisors are reaped
    cpu_ms = (sandbox_cpu_s(server_pid) - cpu_before) * 1000 / WARM_RUNS
    return {"p50": statistics.median(latencies), "p95": percentile(latencies, 0.95),
            "refill": statistics.median(refills), "cpu": cpu_ms}


def back_to_back(client: httpx.Client, framework: str) -> float:
    wait_for_spares(client)
    samples = []
    for _ in range(WARM_RUNS):
        elapsed, ok = timed_run(client, framework)
        if not ok:
            raise SystemExit(f"a back-to-back {framework} run failed")
        samples.append(elapsed)
    return statistics.median(samples)


def burst(url: str, frameworks: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client, \
            concurrent.futures.ThreadPoolExecutor(len(frameworks)) as workers:
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


def row(label: str, value: str, floor: str = "", ratio: str = "") -> None:
    print(f"{label:<46}{value:>12}{floor:>24}{ratio:>10}")


BURSTS = {
    "mixed": ["pytorch", "tensorflow"] * (BURST // 2),
    "pytorch": ["pytorch"] * BURST,
    "tensorflow": ["tensorflow"] * BURST,
}
BURST_FLOORS = {"mixed": 3, "pytorch": 8, "tensorflow": None}
CPU_FLOORS = {"pytorch": 30, "tensorflow": 120}


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
                # Each framework's back-to-back runs follow its paced ones, once the
                # reserve's mix has followed that demand (a switch of framework is
                # what the refill figure measures).
                paced, b2b = {}, {}
                for fw in SNIPPETS:
                    paced[fw] = paced_runs(client, fw, server.pid)
                    b2b[fw] = back_to_back(client, fw)
                bursts = {}
                for name, frameworks in BURSTS.items():
                    wait_for_spares(client)
                    bursts[name] = burst(url, frameworks)
                wait_for_spares(client)
                time.sleep(5.5)  # the health endpoint reads PSS in the background, every 5 s
                client.get("/api/health")
                time.sleep(1.0)
                health = client.get("/api/health").json()["pool"]
                render = page_render_ms(client)
            queue = queue_path.side_by_side(url, data_dir, {}, SNIPPETS, WARM_RUNS)
        finally:
            server.terminate()
            server.wait(timeout=60)

    print(f"device: {device}\n")
    row("measure", "value", "floor / baseline", "ratio")
    row("cold: fresh python, both frameworks, snippet", f"{cold:.0f}ms", "", "1.0x")
    for fw, m in paced.items():
        row(f"single run {fw} p50 over HTTP", f"{m['p50']:.1f}ms", "floor 20 ms",
            f"{cold / m['p50']:.0f}x")
        row(f"single run {fw} p95 over HTTP", f"{m['p95']:.1f}ms")
    for fw, p50 in b2b.items():
        row(f"back-to-back {fw} p50 (no pause)", f"{p50:.1f}ms", "floor 50 ms",
            f"{cold / p50:.0f}x")
    for fw, m in paced.items():
        row(f"spare refill after a {fw} run, p50", f"{m['refill']:.0f}ms")
        row(f"sandbox CPU per {fw} run, spare included", f"{m['cpu']:.0f}ms",
            f"floor {CPU_FLOORS[fw]} ms")
    for name, (ms, failures) in bursts.items():
        floor = f"floor {BURST_FLOORS[name]}x cold" if BURST_FLOORS[name] else "vs one cold start"
        row(f"burst of {BURST} ({name}), completion", f"{ms:.0f}ms", floor, f"{cold / ms:.1f}x")
        row(f"burst of {BURST} ({name}), failures", str(failures), "floor 0")
    reserve_now = ", ".join(f"{fw} {r['ready']}/{r['target']}"
                            for fw, r in health["reserve"].items())
    row("pool PSS (templates, spares)", f"{health['pool_pss_mb']:.0f}MiB", "floor 1536 MiB")
    row(f"reserve ({health['reserve_memory_mb']} MiB budget)", reserve_now)
    if render:
        row("lesson page render p50 (server-side)", f"{statistics.median(render):.1f}ms",
            "floor 20 ms")
    else:
        row("lesson page render p50 (server-side)", "n/a")
    for fw, (local_ms, remote_ms) in queue.items():
        row(f"single run {fw} p50, local pool", f"{local_ms:.1f}ms")
        row(f"single run {fw} p50, via Redis + worker", f"{remote_ms:.1f}ms")
        row(f"queue path {fw}, p50 added", f"{remote_ms - local_ms:+.1f}ms", "floor 10 ms")


if __name__ == "__main__":
    main()
