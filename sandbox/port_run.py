"""A port through the pool: a run of its own, with the port's limits and its files.

    Pool.port ──FairQueue slot──> port_on_spare
        opens the model and the user's inputs (read-only; /dev/null when absent)
        and out_dir/.archive (write-only, new)
        Spares.take_port ──SpawnSpare(port) + the three fds──> template ──fork──> run
        RunOrder(port=...) ──> run: loads, ports, proves, writes the archive (job.py)
        RunFinished <── run;  port_files.accept_archive: checked, then the files

Why a fresh spare, made for the port, rather than a ready one: the port's
limits (memory, file size, scratch, wall time) are the run's rlimits and
tmpfs, fixed when the spare is fenced in, and the files reach it the
way every spare's socket already travels, as descriptors with the order to
the template. A fresh spare costs a fork and no warm-up (≈ 0.1 s), nothing
next to a port's seconds. The run never sees a path of the server's: only
descriptors, two it can only read (the model, the inputs), one it can only
write (bounded by its RLIMIT_FSIZE). Everything it writes is checked in `port_files.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import wire
from sandbox.limits import Limits
from sandbox.messages import RunFinished, RunOrder
from sandbox.port_files import ArchiveRefused, accept_archive, empty
from sandbox.protocol import PortOrder, PortReport, RunRequest, RunResult, RunStatus

if TYPE_CHECKING:
    from sandbox.pool import Pool

log = logging.getLogger("sidebyside.pool")
ARCHIVE_NAME = ".archive"  # the run's output, in out_dir until checked; then gone
RESULT_GRACE_S = 5.0  # on top of the port's wall time: the supervisor's report


def _read_only(path: Path | None) -> int:
    source = path if path is not None else Path(os.devnull)
    return os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)


def _open_files(model: Path | None, out_dir: Path, inputs: Path | None) -> tuple[int, ...]:
    """The run's files, in `runner`'s order: model, archive, inputs."""
    opened: list[int] = []
    try:
        opened.append(_read_only(model))
        opened.append(os.open(out_dir / ARCHIVE_NAME,
                              os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        opened.append(_read_only(inputs))
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    return tuple(opened)


def _failure(result: RunResult | None, order: PortOrder) -> PortReport:
    """The run ended without an archive we could use: say how, as the report's error."""
    if result is None:
        return PortReport.failed("SandboxLost", "the sandbox went away during the port", order)
    messages = {
        RunStatus.timeout: "the port ran out of time (SIDEBYSIDE_PORT_TIMEOUT_S)",
        RunStatus.memory: "the port ran out of memory (SIDEBYSIDE_PORT_MEMORY_MB)",
        RunStatus.output_limit: "the port printed more than a run may",
    }
    message = messages.get(result.status) or (
        result.error.message if result.error else f"the port's run ended: {result.status}")
    kind = result.error.type if result.error else str(result.status)
    return PortReport.failed(kind, message, order)


async def port_on_spare(pool: Pool, order: PortOrder, model: Path | None,
                        out_dir: Path, inputs: Path | None = None) -> PortReport:
    """The port's report; its files in `out_dir` when it made a module, else nothing there,
    however it ends (cancelled included)."""
    try:
        return await _port(pool, order, model, out_dir, inputs)
    except BaseException:
        with contextlib.suppress(OSError):
            empty(out_dir)
        raise


async def _port(pool: Pool, order: PortOrder, model: Path | None,
                out_dir: Path, inputs: Path | None) -> PortReport:
    limits = pool.limits.for_port()
    clock = [time.monotonic()]
    result = await _run(pool, order, limits, _open_files(model, out_dir, inputs))
    clock.append(time.monotonic())
    if result is None or result.status is not RunStatus.ok:
        empty(out_dir)
        return _failure(result, order)
    checking = asyncio.ensure_future(asyncio.to_thread(
        accept_archive, out_dir / ARCHIVE_NAME, out_dir, limits.file_size_mb * 1024 * 1024))
    try:
        report = await asyncio.shield(checking)
    except ArchiveRefused as exc:
        log.warning("a port's archive was refused: %s", exc)
        return PortReport.failed("ArchiveRefused", f"the port's output was refused: {exc}",
                                 order)
    except OSError as exc:
        empty(out_dir)
        return PortReport.failed("ArchiveRefused", f"the port's output could not be read: "
                                 f"{exc}", order)
    except asyncio.CancelledError:  # the thread can't be stopped: empty the folder after it
        checking.add_done_callback(lambda _: empty(out_dir))
        raise
    clock.append(time.monotonic())
    log.info("port: %.1f s for its run (its spare included), %.1f s checking and writing "
             "its files", *(b - a for a, b in itertools.pairwise(clock)))
    return report


async def _run(pool: Pool, order: PortOrder, limits: Limits,
               files: tuple[int, ...]) -> RunResult | None:
    """The run's result (None: the sandbox lost it); its archive is in out_dir."""
    try:
        spare = await pool.spares.take_port(limits, files)
    except TimeoutError:
        return RunResult.failed(RunStatus.killed, "SandboxUnavailable",
                                "no sandbox became ready in time")
    finally:
        for fd in files:
            os.close(fd)
    pool.runs_started += 1
    request = RunRequest(framework="tensorflow", code="")
    run_order = RunOrder(request=request, port=order, wall_s=limits.wall_s, cpu_s=limits.cpu_s)
    try:
        spare.writer.write(wire.encode(run_order))
        await spare.writer.drain()
        frame = await asyncio.wait_for(
            wire.read_body_async(spare.reader, limits.result_bytes + 8 * limits.output_bytes
                                  + 2**20), limits.wall_s + RESULT_GRACE_S)
        return None if frame is None else wire.parse_frame(RunFinished, frame).result
    except (TimeoutError, ConnectionError, ValueError) as exc:
        log.warning("port lost: %r", exc)
        return None
    finally:
        spare.close()
        pool.spares.release_slot(spare.slot)
