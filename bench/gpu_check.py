"""The GPU path's figures, measured on the host this runs on (`bench/gpu_check.sh` calls it).

Prints one row per measure. Without a GPU (or with `--dry-run`) the rows
that need CUDA say `skipped` and why; everything else runs as it would on a
GPU host: the sandbox's view, the template's open files, run latency with
ready spares, the devices lesson end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from sandbox import gpu  # noqa: E402
from sandbox.fairqueue import Client  # noqa: E402
from sandbox.pool import Pool  # noqa: E402
from sandbox.protocol import RunRequest, RunResult  # noqa: E402

CLIENT = Client("gpu-check", "127.0.0.1")
RUNS = 20
PICK = "dev = 'cuda:0' if torch.cuda.is_available() else 'cpu'\n"
SNIPPETS = {
    "pytorch": "import torch\n" + PICK + "x = torch.ones(256, 256, device=dev)\n"
               "y = (x @ x).sum()\nprint(y.item(), y.device)",
    "tensorflow": "import tensorflow as tf\nx = tf.ones([256, 256])\n"
                  "y = tf.reduce_sum(x @ x)\nprint(float(y), y.device)",
}
VIEW = ("import os\n"
        "def ls(folder):\n"
        "    try:\n"
        "        return sorted(os.listdir(folder))\n"
        "    except OSError as e:\n"
        "        return type(e).__name__\n"
        "print([n for n in ls('/dev') if n.startswith('nvidia')])\n"
        "print({d: ls(d) for d in ('/sys', '/sys/devices', '/sys/bus/pci/devices')})\n")
CHUNK_MB = 256
BOMBS = {
    "pytorch": "import torch\nheld = []\ntry:\n    while True:\n"
               f"        held.append(torch.empty({CHUNK_MB} * 2**20, dtype=torch.uint8, "
               "device='cuda:0'))\nexcept torch.cuda.OutOfMemoryError:\n"
               "    print(torch.cuda.memory_allocated() // 2**20)\n    raise\n",
    "tensorflow": "import tensorflow as tf\nheld = []\ntry:\n    with tf.device('/GPU:0'):\n"
                  f"        while True:\n            held.append(tf.zeros([{CHUNK_MB} * 2**18]))\n"
                  f"except tf.errors.ResourceExhaustedError:\n    print(len(held) * {CHUNK_MB})\n"
                  "    raise\n",
}


def row(measure: str, value: object, note: str = "") -> None:
    print(f"{measure:<50}{value!s:>18}  {note}".rstrip(), flush=True)


def skip(measure: str, why: str) -> None:
    row(measure, "skipped", why)


def spare_startup(framework: str, memory_mb: int) -> str:
    """`gpu.prepare` in fresh forks of a process that imported only `framework`, as spares do.

    That process stands in for the framework's template (it never touches
    CUDA); this one imports no framework at all.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            importlib.import_module("torch" if framework == "pytorch" else "tensorflow")
            ms, held = _forks(framework, memory_mb)
            os.write(write, f"{ms:.0f}ms|GPU memory held by one: {held}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return answer or "failed|gpu.prepare raised in a fresh fork (see stderr)"


def _forks(framework: str, memory_mb: int, tries: int = 3) -> tuple[float, str]:
    samples, held = [], ""
    for _ in range(tries):
        result_r, result_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                started = time.perf_counter()
                gpu.prepare(framework, memory_mb)
                os.write(result_w, f"{(time.perf_counter() - started) * 1000:.0f}".encode())
            finally:
                os.close(result_w)
                os.read(go_r, 1)  # held, context and all, while the parent asks nvidia-smi
                os._exit(0)
        os.close(result_w)
        with os.fdopen(result_r) as f:
            answer = f.read()
        held = _gpu_memory_of(pid)
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        for fd in (go_r, go_w):
            os.close(fd)
        if not answer:
            raise RuntimeError(f"gpu.prepare({framework!r}) failed in a fresh fork")
        samples.append(float(answer))
    return statistics.median(samples), held


def _gpu_memory_of(pid: int) -> str:
    if shutil.which("nvidia-smi") is None:
        return "? (no nvidia-smi)"
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout
    mine = [line.split(",")[1].strip() for line in out.splitlines()
            if line.split(",")[0] == str(pid)]
    return mine[0] if mine else "?"


def template_holds_gpu(pool: Pool) -> str:
    """GPU device files open in the template (non-leaf `sandbox.template` processes)."""
    from sandbox.memory import children

    templates = getattr(pool, "templates", None)  # one per framework, or one for both
    processes = ([t.process for t in templates.values()] if templates is not None
                 else [getattr(pool, "_process", None)])
    tree, queue = [], [p.pid for p in processes if p is not None]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue += children(pid)
    found = []
    for pid in tree:
        try:
            is_template = b"sandbox.template" in Path(f"/proc/{pid}/cmdline").read_bytes()
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if is_template and children(pid):
            found += [f for f in fds if f.startswith("/dev/nvidia")]
    return "none" if not found else ", ".join(sorted(set(found)))


async def timed_run(pool: Pool, framework: str, code: str,
                    timeout_s: float = 10) -> tuple[float, RunResult]:
    started = time.perf_counter()
    request = RunRequest(framework=framework, code=code, timeout_s=timeout_s)
    result = await pool.run(request, CLIENT)
    return (time.perf_counter() - started) * 1000, result


async def pool_checks(settings: Settings, on_gpu: bool, insecure: bool) -> None:
    started = time.perf_counter()
    pool = Pool(settings.limits(), size=settings.pool_size, insecure=insecure,
                spares_memory_mb=settings.spares_memory_mb)
    await pool.start()
    try:
        targets = sum(pool.reserve.targets().values())
        while pool.stats().spares_ready < targets and time.perf_counter() - started < 300:
            await asyncio.sleep(0.05)
        row("pool start to a full reserve", f"{time.perf_counter() - started:.1f}s",
            f"{pool.stats().spares_ready}/{targets} spares, {pool.size} slot(s)"
            + (" (gpu_runs_per_device)" if pool.gpu else ""))
        row("GPU files open in the template", template_holds_gpu(pool), "must be none")
        _, view = await timed_run(pool, "pytorch", VIEW)
        seen = view.stdout.splitlines() + [f"{view.status}: {view.error}"] * 2
        row("a run sees /dev/nvidia*", "", seen[0][:100])
        row("a run sees in /sys", "", seen[1][:100])
        for framework, code in SNIPPETS.items():
            samples, device = [], ""
            for _ in range(RUNS):
                await asyncio.sleep(0.3)  # the reserve refills between clicks
                ms, result = await timed_run(pool, framework, code)
                samples.append(ms)
                device = f"{result.status}; {result.device}; {result.stdout.strip()[-24:]}"
            p50, p95 = statistics.median(samples), sorted(samples)[int(0.95 * (RUNS - 1))]
            row(f"run latency {framework} p50 (ready spares)", f"{p50:.1f}ms")
            row(f"run latency {framework} p95", f"{p95:.1f}ms", device[:90])
        cap = settings.run_gpu_memory_mb
        for framework, code in BOMBS.items():
            if not on_gpu:
                skip(f"GPU memory bomb, {framework}", "needs a GPU")
                continue
            ms, result = await timed_run(pool, framework, code, timeout_s=30)
            reached = result.stdout.strip().splitlines()[-1:] or ["?"]
            row(f"GPU memory bomb, {framework}", result.status,
                f"held {reached[0]} MiB at the error, cap {cap} MiB, {ms:.0f} ms")
            _, after = await timed_run(pool, framework, SNIPPETS[framework])
            row(f"next {framework} run after the bomb", after.status)
    finally:
        await pool.stop()


def lesson_check(insecure: bool) -> None:
    lesson = ROOT / "lessons/core/07-devices.md"
    command = [sys.executable, "-m", "app.cli", "check", str(lesson)]
    env = {**os.environ, **({"SIDEBYSIDE_INSECURE_NO_SANDBOX": "true"} if insecure else {})}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    last = (done.stdout.strip().splitlines() or ["no output"])[-1]
    row("devices lesson end to end (sidebyside check)", f"{time.perf_counter() - started:.1f}s",
        f"exit {done.returncode}: {last[:70]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="a CPU host: skip what needs CUDA")
    parser.add_argument("--insecure", action="store_true", help="without the sandbox (no bwrap)")
    args = parser.parse_args()
    settings = Settings()
    on_gpu = gpu.present() and not args.dry_run
    for framework in ("pytorch", "tensorflow"):
        value, _, note = spare_startup(framework, settings.run_gpu_memory_mb).partition("|")
        if on_gpu:
            row(f"CUDA start-up per spare, {framework}", value, note)
        else:  # the same forks and calls, with no device: the script's own plumbing is tried
            skip(f"CUDA start-up per spare, {framework}", f"needs a GPU (without one: {value})")
    asyncio.run(pool_checks(settings, on_gpu, args.insecure))
    lesson_check(args.insecure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
