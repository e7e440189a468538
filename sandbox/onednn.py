"""TensorFlow's matmul kernels generated once, in its template, for every spare.

TensorFlow's CPU matmuls and convolutions (Eigen contractions) call oneDNN's
`dnnl_sgemm`, which generates its machine code (Xbyak JIT) at the first call
in each process: ≈ 35 ms of CPU, a third of what a TensorFlow spare cost.
oneDNN keeps that code in process-wide tables, so generating it in the
template, before any fork, hands it to every spare for free.

This calls oneDNN's plain C function on a few small arrays: one thread, no
TensorFlow op, no runtime, nothing that a fork could leave half-held. The
function is not exported by TensorFlow's library, so it is found in the
library's symbol table; where it can't be found or its answers are wrong,
nothing is kept and each spare generates the code itself, as TensorFlow
does. `Limits.onednn_precompile` (SIDEBYSIDE_ONEDNN_PRECOMPILE) turns it off.
"""

from __future__ import annotations

import ctypes
import faulthandler
import mmap
import os
import resource
import signal
import struct
import sys
from collections.abc import Callable

import numpy as np

from sandbox.messages import KernelState, KernelStatus

LIBRARY = "libtensorflow_cc.so.2"
SYMBOL = b"dnnl_sgemm"

# (M, N, K): a tiny product takes oneDNN's no-copy kernels, a larger one its
# packing (copy) kernels, and a row or a column its matrix-vector kernels.
SHAPES = ((4, 4, 4), (256, 256, 256), (1, 64, 64), (64, 1, 64))
TRIAL_S = 20  # the trial's products take ≈ 0.1 s
# The TensorFlow release this was last verified on (tests/test_onednn.py, as
# the README's "oneDNN kernels" says). Any other release is still tried, and
# kept only when every product is right; the status carries both versions.
VERIFIED_ON = "2.21.0"

_DIM = ctypes.c_int64
_FLOATS = ctypes.POINTER(ctypes.c_float)
_SGEMM = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, _DIM, _DIM, _DIM,
                          ctypes.c_float, _FLOATS, _DIM, _FLOATS, _DIM,
                          ctypes.c_float, _FLOATS, _DIM)

Sgemm = Callable[..., int]  # a `_SGEMM` pointer, as mypy sees it

_SHT_SYMTAB = 2
STT_OBJECT, STT_FUNC = 1, 2


def loaded_library() -> tuple[str, int, list[range]] | None:
    """TensorFlow's library in this process: its path, load address and code ranges."""
    path, base, code = "", None, []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) != 6 or not fields[5].endswith("/" + LIBRARY):
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5]
            if int(fields[2], 16) == 0:
                base = low
            if "x" in fields[1]:
                code.append(range(low, high))
    return None if base is None else (path, base, code)


def symbol_offset(path: str, name: bytes, kind: int = STT_FUNC) -> int | None:
    """Where the ELF file's full symbol table (.symtab) puts `name`, or None.

    `kind` is the symbol's type (a function or a variable). A shared
    library's first segment is linked at address 0, so the symbol's value is
    its offset from where the library is loaded (`precompile` still checks
    that the address lands in the library's code). A linear walk over a million symbols
    would take a second; instead the name is found in the string table and
    its index in the symbol table, both by the C-speed `find` of the mapped
    file.
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as elf:
        if elf[:5] != b"\x7fELF\x02":  # 64-bit ELF only
            return None
        (section_table,) = struct.unpack_from("<Q", elf, 0x28)
        entry_size, count = struct.unpack_from("<HH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, section_table + i * entry_size)
                    for i in range(count)]
        symtab = next((s for s in sections if s[1] == _SHT_SYMTAB), None)
        if symtab is None:  # a stripped library
            return None
        strings = sections[symtab[6]]
        str_start, str_end = strings[4], strings[4] + strings[5]
        sym_start, sym_end, sym_size = symtab[4], symtab[4] + symtab[5], symtab[9]
        at = elf.find(b"\0" + name + b"\0", str_start, str_end)
        if at < 0:
            return None
        key = struct.pack("<I", at + 1 - str_start)  # st_name, the entry's first field
        hit = elf.find(key, sym_start, sym_end)
        while hit >= 0:
            if (hit - sym_start) % sym_size == 0:
                _, info, _, section, value, _ = struct.unpack_from("<IBBHQQ", elf, hit)
                if info & 0xF == kind and section != 0:
                    return value
            hit = elf.find(key, hit + 1, sym_end)
    return None


def _product_is_right(sgemm: Sgemm, m: int, n: int, k: int) -> bool:
    """The whole of one product against NumPy's, on inputs that make every cell differ.

    Small integers keep every sum exact in float32, so the two must agree
    to the bit; NumPy multiplies them as integers, which uses no BLAS and
    so starts no thread in the template.
    """
    a = (np.arange(m * k, dtype=np.float32) % 7 - 3).reshape(m, k)
    b = (np.arange(k * n, dtype=np.float32) % 5 - 2).reshape(k, n)
    c = np.full((m, n), np.nan, dtype=np.float32)  # a cell left unwritten shows
    status = sgemm(b"N", b"N", m, n, k, 1.0, a.ctypes.data_as(_FLOATS), k,
                   b.ctypes.data_as(_FLOATS), n, 0.0, c.ctypes.data_as(_FLOATS), n)
    expected = a.astype(np.int64) @ b.astype(np.int64)
    return status == 0 and bool(np.array_equal(c, expected))


def _all_products_right(sgemm: Sgemm) -> bool:
    return all(_product_is_right(sgemm, *shape) for shape in SHAPES)


def _trial_in_child(sgemm: Sgemm) -> str | None:
    """Call it first in a throwaway child: a wrong address kills the child, not us."""
    pid = os.fork()
    if pid == 0:
        faulthandler.disable()  # a crash here is an answer, not news
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # and leaves no core file
        signal.alarm(TRIAL_S)  # nor hangs the template's start
        os._exit(0 if _all_products_right(sgemm) else 1)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"a trial call died of signal {os.WTERMSIG(status)}"
    if os.waitstatus_to_exitcode(status) != 0:
        return "a trial call gave a wrong product"
    return None


def _status(state: KernelState, reason: str = "") -> KernelStatus:
    tensorflow = sys.modules.get("tensorflow")
    return KernelStatus(state=state, reason=reason, verified_on=VERIFIED_ON,
                        tensorflow=str(getattr(tensorflow, "__version__", "")))


def off() -> KernelStatus:
    """Turned off: each spare generates the kernels at its first matmul, as TF does."""
    return _status(KernelState.off)


def precompile() -> KernelStatus:
    """Generate oneDNN's sgemm kernels in this process, or say why not."""
    loaded = loaded_library()
    if loaded is None:
        return _status(KernelState.failed, f"{LIBRARY} is not loaded")
    path, base, code = loaded
    try:
        offset = symbol_offset(path, SYMBOL)
    except (OSError, ValueError, struct.error) as exc:
        return _status(KernelState.failed, f"reading {LIBRARY}'s symbols failed ({exc})")
    if offset is None:
        return _status(KernelState.failed, f"{LIBRARY} has no {SYMBOL.decode()} function")
    if not any(base + offset in r for r in code):
        return _status(KernelState.failed, f"{SYMBOL.decode()} is not in {LIBRARY}'s code")
    sgemm = _SGEMM(base + offset)
    failure = _trial_in_child(sgemm)
    if failure is not None:
        return _status(KernelState.failed, failure)
    if not _all_products_right(sgemm):
        return _status(KernelState.failed, f"{SYMBOL.decode()} gave a wrong product")
    return _status(KernelState.done)
