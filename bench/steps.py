"""`make bench-steps`: lesson steps through the pool against the same code's own work.

For each step and side (edited with a comment, so nothing is cached):
- *pool*: wall time p50 over 3 runs through the sandbox pool, as a learner's Run;
- *own work*: the same code's second run in one warm process that imported both
  frameworks and ran it once (its imports, first traces and caches paid);
- *added*: the difference, what the sandbox (and a fresh process) adds.

By default the heavy steps (compiling, exporting, DDP, fit); `--all` measures every
step of every bundled lesson (long: minutes per lesson), `--step ID` one step.
Ratios hold on noisy machines; absolute times don't.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.packs.loader import load_pack  # noqa: E402
from sandbox.fairqueue import Client  # noqa: E402
from sandbox.limits import Limits  # noqa: E402
from sandbox.pool import Pool  # noqa: E402
from sandbox.protocol import FRAMEWORKS, RunRequest  # noqa: E402

HEAVY = ("torch-compile-a-graph-when-you-ask-for-one", "torch-export-one-whole-graph-ahead-of-time",
         "onnx-from-both-frameworks", "ddp-averages-the-gradients",
         "compile-and-fit-versus-your-own-loop")
RUNS = 3

# A warm process: both frameworks imported, the snippet run once, then timed again
# in a fresh namespace, in its scratch folder (snippets write files).
OWN_WORK = """
import json, os, sys, tempfile, time
os.chdir(tempfile.mkdtemp())
import tensorflow, torch
from sandbox.frameworks.pytorch import keep_backward_context_off_cpu_threads
keep_backward_context_off_cpu_threads(torch)  # as in the pool: DDP's teardown can deadlock
code = sys.stdin.read()
exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
started = time.perf_counter()
exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
print(json.dumps({"own_s": time.perf_counter() - started}))
"""


def own_work_s(code: str) -> float | None:
    try:
        done = subprocess.run([sys.executable, "-c", OWN_WORK], input=code, capture_output=True,
                              text=True, timeout=300,
                              env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin",
                                   "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"own_s"')]
    return json.loads(lines[-1])["own_s"] if lines else None


async def pool_p50_s(pool: Pool, framework: str, code: str, timeout_s: float) -> tuple[float, str]:
    walls, status = [], "ok"
    for i in range(RUNS):
        edited = f"{code}\n# edited {time.time()}\n"  # never a cached output
        started = time.perf_counter()
        result = await pool.run(RunRequest(framework=framework, code=edited, timeout_s=timeout_s),
                                Client(f"bench-{i}", "127.0.0.1"))
        walls.append(time.perf_counter() - started)
        if result.status.value != "ok":
            status = result.status.value
    return statistics.median(walls), status


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--step", action="append", default=[])
    args = parser.parse_args()
    wanted = set(args.step) or (None if args.all else set(HEAVY))
    pack = load_pack(ROOT / "lessons" / "core")
    steps = [(lesson, step) for lesson in pack.lessons for step in lesson.steps
             if wanted is None or step.id in wanted]
    pool = Pool(Limits(wall_s=60, max_timeout_s=60), size=2)
    await pool.start()
    print(f"{'step':52} {'side':10} {'pool p50':>9} {'own work':>9} {'added':>8}  status")
    try:
        await asyncio.sleep(5)  # the reserve fills
        for lesson, step in steps:
            timeout = max(30.0, lesson.timeout_s or 0.0)
            for framework in FRAMEWORKS:
                code = step.snippet(framework).code
                wall, status = await pool_p50_s(pool, framework, code, timeout)
                own = await asyncio.to_thread(own_work_s, code)
                added = f"{(wall - own) * 1000:7.0f}ms" if own is not None else "   n/a  "
                own_text = f"{own:8.2f}s" if own is not None else "     n/a "
                print(f"{step.id[:52]:52} {framework:10} {wall:8.2f}s {own_text} {added}  "
                      f"{status}", flush=True)
    finally:
        await pool.stop(drain_s=5)


if __name__ == "__main__":
    asyncio.run(main())
