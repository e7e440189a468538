"""oneDNN's matmul kernels generated in the TensorFlow template (sandbox/onednn.py).

The checks read oneDNN's own kernel table: empty in a fresh process, filled
by `precompile()` alone, without a TensorFlow op or a new thread, and still
filled in a child forked afterwards, whose matmuls then agree with NumPy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.settings import ROOT, Settings
from sandbox import launcher, onednn
from sandbox.fairqueue import Client
from sandbox.launcher import RUN_ENV
from sandbox.messages import KernelState, KernelStatus
from sandbox.pool import Pool
from sandbox.protocol import RunRequest, RunStatus

TF_DIR = Path(importlib.util.find_spec("tensorflow").submodule_search_locations[0])
LIBRARY = TF_DIR / onednn.LIBRARY

PROBE = r"""
import ctypes, os
import numpy as np
import tensorflow as tf
from sandbox import onednn

path, base, _ = onednn.loaded_library()
tables = []  # the no-copy sgemm kernel table of each ISA: 2*2*2*3 pointers
for isa in (b"22avx512_common_gemm_f32", b"12avx_gemm_f32"):
    name = b"_ZZN4dnnl4impl3cpu3x64" + isa + b"14get_xbyak_gemmEbbfbE12kernel_table"
    offset = onednn.symbol_offset(path, name, onednn.STT_OBJECT)
    if offset is not None:
        tables.append((ctypes.c_void_p * 24).from_address(base + offset))

def kernels():
    return sum(1 for table in tables for pointer in table if pointer)

def threads():
    return len(os.listdir("/proc/self/task"))

before, threads_before = kernels(), threads()
said = onednn.precompile() if PRECOMPILE else onednn.off()
print(said.state, said.tensorflow, said.verified_on, before, kernels(), threads_before,
      threads(), len(tables), flush=True)
pid = os.fork()
if pid == 0:  # a spare: its kernels were made before the fork, and they compute right
    inherited = kernels()
    a = np.random.default_rng(0).standard_normal((67, 129), dtype=np.float32)
    product = (tf.constant(a) @ tf.constant(a.T)).numpy()
    right = np.allclose(product, a @ a.T, rtol=1e-4, atol=1e-4)
    print("child", inherited, right, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_the_sgemm_function_is_found_in_tensorflows_symbol_table() -> None:
    offset = onednn.symbol_offset(str(LIBRARY), onednn.SYMBOL)
    assert offset is not None and offset > 0
    assert onednn.symbol_offset(str(LIBRARY), b"no_such_function_anywhere") is None
    # the name exists, but as a function, not a variable
    assert onednn.symbol_offset(str(LIBRARY), onednn.SYMBOL, onednn.STT_OBJECT) is None


def test_files_that_are_not_64_bit_elf_have_no_symbols(tmp_path: Path) -> None:
    text = tmp_path / "not-elf.so"
    text.write_bytes(b"#!/bin/sh\n" * 10)
    assert onednn.symbol_offset(str(text), onednn.SYMBOL) is None


def probe(precompile: bool) -> tuple[list[str], str]:
    code = f"PRECOMPILE = {precompile}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**RUN_ENV, "PYTHONPATH": str(ROOT)})  # as in a template
    assert done.returncode == 0, done.stderr[-3000:]
    said, child = done.stdout.splitlines()
    return said.split(), child


def test_precompile_fills_onednns_kernel_table_before_a_fork_without_a_thread() -> None:
    said, child = probe(precompile=True)
    state, tensorflow, verified_on, before, after, threads_before, threads_after, tables = said
    assert state == "done"
    assert tensorflow == verified_on == onednn.VERIFIED_ON  # re-verify after an upgrade
    assert int(tables) >= 1
    assert int(before) == 0 and int(after) > 0  # precompile() generated them
    assert threads_after == threads_before  # and started no thread: the fork is safe
    assert child == f"child {after} True"  # the spare has them and its matmul is right


def test_turned_off_the_template_leaves_the_kernels_to_each_spare() -> None:
    said, child = probe(precompile=False)
    state, _, _, before, after, _, _, _ = said
    assert state == "off" and int(before) == int(after) == 0
    assert child.endswith(" True")  # the spare generates its own, and its matmul is right


def test_what_health_says_of_the_kernels() -> None:
    done = KernelStatus(state=KernelState.done, tensorflow="2.21.0", verified_on="2.21.0")
    assert done.words() == "precompiled in the template"
    newer = done.model_copy(update={"tensorflow": "2.22.0"})
    assert newer.words() == ("precompiled in the template (TensorFlow 2.22.0; "
                             "verified on 2.21.0)")
    assert KernelStatus(state=KernelState.off).words() == "not precompiled: turned off"
    failed = KernelStatus(state=KernelState.failed, reason="a trial call gave a wrong product")
    assert failed.words() == "not precompiled: a trial call gave a wrong product"


def test_a_wrong_address_kills_a_trial_child_never_the_caller() -> None:
    crashing = onednn._SGEMM(16)  # no code there
    assert onednn._trial_in_child(crashing) == "a trial call died of signal 11"


def test_a_function_that_answers_wrongly_is_not_kept() -> None:
    def lazy(*args: object) -> int:
        return 0  # says success, computes nothing

    assert onednn._trial_in_child(onednn._SGEMM(lazy)) == "a trial call gave a wrong product"
    assert not onednn._all_products_right(onednn._SGEMM(lazy))


def test_every_cell_of_the_product_is_checked_not_only_its_corners() -> None:
    def corners_only(transa: bytes, transb: bytes, m: int, n: int, k: int, alpha: float,
                     a: Any, lda: int, b: Any, ldb: int, beta: float, c: Any, ldc: int) -> int:
        for i, j in ((0, 0), (m - 1, n - 1)):  # the right value where a spot check looks
            c[i * ldc + j] = sum(a[i * lda + p] * b[p * ldb + j] for p in range(k))
        for i in range(m * n):
            if c[i] != c[i]:  # NaN: left unwritten
                c[i] = 0.0
        return 0

    assert not onednn._product_is_right(onednn._SGEMM(corners_only), 4, 4, 4)
    assert onednn._trial_in_child(onednn._SGEMM(corners_only)) == (
        "a trial call gave a wrong product")


def test_the_setting_reaches_tensorflows_template_and_its_runs_still_compute_right() -> None:
    limits = Settings(onednn_precompile=False).limits()
    assert "--no-kernels" in launcher.template_argv(3, "tensorflow", kernels=False)

    async def scenario() -> None:
        pool = Pool(limits, size=1, spares_memory_mb=256)
        await pool.start()
        try:
            kernels = pool.stats().tensorflow_kernels
            assert kernels is not None and kernels.state == KernelState.off
            code = "import tensorflow as tf\nprint((tf.ones([2, 3]) @ tf.ones([3, 2])).numpy().tolist())"
            result = await pool.run(RunRequest(framework="tensorflow", code=code),
                                    Client("t", "local"))
            assert result.status == RunStatus.ok and result.stdout == "[[3.0, 3.0], [3.0, 3.0]]\n"
        finally:
            await pool.stop()

    asyncio.run(scenario())
