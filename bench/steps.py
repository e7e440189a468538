"""`make bench-steps`: lesson steps through the pool against the same code's own work.

For each step and side (edited with a comment, so nothing is cached):
- *pool*: wall time p50 over 3 runs through the sandbox pool, as one learner's Run
  (each finding the reserve full);
- *own work*: the same code's second run in one warm process that imported both
  frameworks and ran it once (its imports, first traces and caches paid);
- *added*: the difference, what the sandbox (and a fresh process) adds;
then the steps over a floor, and a class burst: 30 learners, each with its own
cookie and edit, pressing Run on the ONNX step's PyTorch side at once on a real
server, against the physical limit (30 x that code's own CPU time / cores).

By default the heavy steps (compiling, exporting, DDP, fit); `--all` measures every
step of every bundled lesson (one warm process per lesson for the own work),
`--step ID` one step, `--no-burst` skips the class. Ratios hold on noisy
machines; absolute times don't.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import run as bench_run  # bench/run.py, beside this script: its server start

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.packs.loader import load_pack  # noqa: E402
from sandbox.fairqueue import Client  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.pool import Pool  # noqa: E402
from sandbox.protocol import FRAMEWORKS, Framework, RunRequest  # noqa: E402
from sandbox.reserve import FRESH_RUNTIME  # noqa: E402

HEAVY = ("torch-compile-a-graph-when-you-ask-for-one", "torch-export-one-whole-graph-ahead-of-time",
         "onnx-from-both-frameworks", "ddp-averages-the-gradients",
         "compile-and-fit-versus-your-own-loop")
RUNS = 3
ADDED_FLOOR_S, STEP_FLOOR_S, HEAVY_OWN_S = 0.150, 1.0, 0.8  # the floors each step is held to
# A class at the heaviest step: each learner with its own cookie and its own edit.
BURST_STEP, LEARNERS, BURST_FLOOR = "onnx-from-both-frameworks", 30, 1.3
BURST_SIDE: Framework = "pytorch"

# A warm process: both frameworks imported; each snippet run once, then timed again
# in a fresh namespace, in its own scratch folder (snippets write files). One
# process per lesson: a JSON list of snippets in, a JSON line per snippet out.
# `--alone`: a process of its own, that imports nothing first, for a snippet that
# must set things up before its first import (TensorFlow's logical devices, Keras's
# backend); its second run finds them set as it sets them.
OWN_WORK = """
import json, os, sys, tempfile, time
if sys.argv[1:] != ["--alone"]:
    import tensorflow, torch
    from sandbox.frameworks.pytorch import keep_backward_context_off_cpu_threads
    keep_backward_context_off_cpu_threads(torch)  # as in the pool: DDP's teardown can deadlock
for index, code in enumerate(json.load(sys.stdin)):
    os.chdir(tempfile.mkdtemp())
    try:
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
        started, cpu = time.perf_counter(), time.process_time()
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
    except BaseException:
        continue
    said = {"index": index, "own_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu}
    print(json.dumps(said), flush=True)
"""


class OwnWork(NamedTuple):
    wall_s: float
    cpu_s: float  # every thread of the process


def own_works(codes: list[str]) -> list[OwnWork | None]:
    """Each snippet's own work; None where it failed or the process did not get to it."""
    alone = [i for i, code in enumerate(codes) if sets_up_before_import(code)]
    works = _own_works_in_one([c for i, c in enumerate(codes) if i not in alone])
    for i in alone:
        works.insert(i, _own_works_in_one([codes[i]], "--alone")[0])
    return works


def sets_up_before_import(code: str) -> bool:
    return FRESH_RUNTIME.search(code) is not None or "KERAS_BACKEND" in code


def _own_works_in_one(codes: list[str], *flags: str) -> list[OwnWork | None]:
    if not codes:
        return []
    try:
        done = subprocess.run([sys.executable, "-c", OWN_WORK, *flags], input=json.dumps(codes),
                              capture_output=True, text=True, timeout=120 + 60 * len(codes),
                              env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                                   "PYTHONPATH": str(ROOT)})
        out = done.stdout
    except subprocess.TimeoutExpired as stopped:
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else ""
    works: list[OwnWork | None] = [None] * len(codes)
    for line in out.splitlines():
        if line.startswith('{"index"'):
            said = json.loads(line)
            works[said["index"]] = OwnWork(said["own_s"], said["cpu_s"])
    return works


def own_work(code: str) -> OwnWork | None:
    return own_works([code])[0]


async def reserve_full(pool: Pool, timeout_s: float = 30) -> None:
    """One learner's Run finds the reserve full: wait for the refills of the last one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(
            r.ready < r.target or r.prepared < r.prepared_kinds
            for r in pool.stats().reserve.values()):
        await asyncio.sleep(0.01)


async def pool_p50_s(pool: Pool, framework: str, code: str, timeout_s: float) -> tuple[float, str]:
    walls, status = [], "ok"
    for i in range(RUNS):
        await reserve_full(pool)
        edited = f"{code}\n# edited {time.time()}\n"  # never a cached output
        started = time.perf_counter()
        result = await pool.run(RunRequest(framework=framework, code=edited, timeout_s=timeout_s),
                                Client(f"bench-{i}", "127.0.0.1"))
        walls.append(time.perf_counter() - started)
        if result.status.value != "ok":
            status = result.status.value
    return statistics.median(walls), status


def class_burst(code: str, timeout_s: float) -> tuple[float, int]:
    """30 learners press Run at once on the web server; seconds until the last answer."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = bench_run.free_port()
        server = bench_run.start_server(port, data_dir)
        url = f"http://127.0.0.1:{port}"
        # Each learner's browser is open before anyone presses Run: an HTTP client
        # costs ≈ 22 ms of CPU to make (its TLS context), and here the learners
        # share the server's two cores, so they are made before the clock starts.
        clients = [httpx.Client(base_url=url, timeout=600,
                                cookies={"sbs_learner": f"learner-{i}"})
                   for i in range(LEARNERS)]

        def learner(i: int) -> bool:
            answer = clients[i].post("/api/runs", json={
                "framework": BURST_SIDE, "code": f"{code}\n# learner {i}\n",
                "timeout_s": timeout_s})
            return answer.status_code == 200 and answer.json()["status"] == "ok"
        try:
            time.sleep(5)  # the reserve fills
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(LEARNERS) as workers:
                outcomes = list(workers.map(learner, range(LEARNERS)))
            return time.perf_counter() - started, outcomes.count(False)
        finally:
            for client in clients:
                client.close()
            server.terminate()
            server.wait(timeout=60)


def print_class_burst(pack_dir: Path) -> None:
    lesson, step = next((lesson, step) for lesson in load_pack(pack_dir).lessons
                        for step in lesson.steps if step.id == BURST_STEP)
    code = step.snippet(BURST_SIDE).code
    # Its own CPU, the median of three processes: one sample moved by up to 2x
    # with what the machine had just done (the pool's processes still exiting).
    works = [work for work in (own_work(code) for _ in range(3)) if work is not None]
    if len(works) < 3:
        print("class burst: the step's own work did not finish")
        return
    work = sorted(works, key=lambda w: w.cpu_s)[1]
    cores = os.cpu_count() or 1
    limit = LEARNERS * work.cpu_s / cores
    wall, failures = class_burst(code, max(30.0, lesson.timeout_s or 0.0))
    print(f"\nclass burst: {LEARNERS} learners, {BURST_STEP} ({BURST_SIDE}), each its own edit")
    print(f"  own CPU per run {work.cpu_s:.2f}s; physical limit {LEARNERS} x {work.cpu_s:.2f}s"
          f" / {cores} cores = {limit:.1f}s")
    print(f"  all answered in {wall:.1f}s = {wall / limit:.2f}x the limit "
          f"(floor {BURST_FLOOR}x); failures {failures} (floor 0)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--step", action="append", default=[])
    parser.add_argument("--no-burst", action="store_true", help="skip the class burst")
    args = parser.parse_args()
    wanted = set(args.step) or (None if args.all else set(HEAVY))
    pack = load_pack(ROOT / "lessons" / "core")
    steps = [(lesson, step) for lesson in pack.lessons for step in lesson.steps
             if wanted is None or step.id in wanted]
    pool = Pool(Limits(wall_s=60, max_timeout_s=60), size=2)
    await pool.start()
    print(f"{'step':52} {'side':10} {'pool p50':>9} {'own work':>9} {'added':>8}  status")
    over: list[str] = []
    try:
        await asyncio.sleep(5)  # the reserve fills
        for lesson in pack.lessons:
            sides = [(step, framework) for step in lesson.steps if (lesson, step) in steps
                     for framework in FRAMEWORKS]
            if not sides:
                continue
            timeout = max(30.0, lesson.timeout_s or 0.0)
            walls = [await pool_p50_s(pool, framework, step.snippet(framework).code, timeout)
                     for step, framework in sides]
            works = await asyncio.to_thread(
                own_works, [step.snippet(framework).code for step, framework in sides])
            for (step, framework), (wall, status), work in zip(sides, walls, works, strict=True):
                own = work.wall_s if work else None
                added = f"{(wall - own) * 1000:7.0f}ms" if own is not None else "   n/a  "
                own_text = f"{own:8.2f}s" if own is not None else "     n/a "
                print(f"{step.id[:52]:52} {framework:10} {wall:8.2f}s {own_text} {added}  "
                      f"{status}", flush=True)
                if own is not None and (wall - own > ADDED_FLOOR_S
                                        or (wall > STEP_FLOOR_S and own <= HEAVY_OWN_S)):
                    over.append(f"{step.id} ({framework})")
    finally:
        await pool.stop(drain_s=5)
    print(f"\nover a floor (adds > {ADDED_FLOOR_S * 1000:.0f} ms, or > {STEP_FLOOR_S:.1f} s p50 "
          f"with own work <= {HEAVY_OWN_S:.1f} s): {len(over)} of {len(steps) * len(FRAMEWORKS)}"
          + "".join(f"\n  {name}" for name in over))
    if not args.no_burst:
        print_class_burst(ROOT / "lessons" / "core")


if __name__ == "__main__":
    asyncio.run(main())
