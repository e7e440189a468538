"""Ports in the background: one sandboxed run each, its files kept under the data dir.

    data_dir/ports/<id>/model.keras|.h5   the upload, until its port ends
    data_dir/ports/<id>/inputs.npy|.npz   the user's inputs, if given, likewise
    data_dir/ports/<id>/out/              what the port wrote (executor.PORT_FILES)

A port is recorded (status `porting`), its upload kept, and the port runs
through the executor as a task of its own, as an uploaded pack's check does.
When it ends, the record holds the report; a proved or partial port keeps
its files (the upload goes), a failed one keeps none. Each client has one
port in flight at a time, and one address a few: a port is a heavy run
(both frameworks, a whole model), and its upload can be hundreds of MiB.
Ports a restart interrupted run again at the next start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from app.ports.uploads import keep
from app.store import ports as store
from app.store.db import Database
from app.store.ports import PortRecord, PortStatus
from sandbox.executor import PORT_FILES, Executor, PortsUnavailable
from sandbox.fairqueue import Client, QueueFull
from sandbox.protocol import PortOrder, PortReport

log = logging.getLogger(__name__)
PORTS_PER_CLIENT = 1
PORTS_PER_ADDRESS = 4
PORTS_IN_FLIGHT = 16  # every client together: bounds the uploads waiting on disk
REFUSAL_WAIT_S = 0.5  # a pool that can't port, or a full queue, says so at once
RETRY_AFTER_S = 10
RESUMED = Client(learner="port:resumed", address="local", capped=False)


class PortRefused(Exception):
    def __init__(self, status: int, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after_s = status, detail, retry_after_s


class PortService:
    def __init__(self, root: Path, db: Database, executor: Executor) -> None:
        self.root, self.db, self.executor = root, db, executor
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._clients: collections.Counter[str] = collections.Counter()
        self._addresses: collections.Counter[str] = collections.Counter()

    def folder(self, port_id: str) -> Path:
        return self.root / port_id

    def file(self, port_id: str, name: str) -> Path | None:
        """One of a finished port's files, if it kept it."""
        path = self.folder(port_id) / "out" / name
        return path if name in PORT_FILES and path.is_file() else None

    def kept(self, port_id: str) -> list[str]:
        """The files a finished port kept (none while it runs, none once it failed)."""
        if port_id in self._tasks:
            return []
        return [name for name in PORT_FILES if self.file(port_id, name) is not None]

    async def wait(self, port_id: str, timeout_s: float) -> bool:
        """Whether the port has ended, after waiting up to `timeout_s` for it."""
        task = self._tasks.get(port_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout_s)
        return task is None or task.done()

    # ---- starting a port ------------------------------------------------------------

    async def start(self, order: PortOrder, upload: BinaryIO | None, source: str,
                    owner_digest: str, client: Client, inputs: BinaryIO | None = None) -> str:
        """Record the port, keep its uploads and start it; its id. Raises `PortRefused`
        (429: too many ports; 503: this server can't port) leaving nothing behind."""
        self._admit(client)  # the client's slot is held from here, so two posts can't race
        port_id = secrets.token_urlsafe(12)
        folder = self.folder(port_id)
        try:
            (folder / "out").mkdir(parents=True)
            if upload is not None:
                await asyncio.to_thread(keep, upload, self._model_path(port_id, order))
            inputs_path = self._inputs_path(port_id, order)
            if inputs is not None and inputs_path is not None:
                await asyncio.to_thread(keep, inputs, inputs_path)
            await store.create(self.db, port_id, owner_digest, source,
                               order.model_dump(mode="json"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            self._release(client)
            raise
        task = self._run(port_id, order, client)
        await asyncio.wait({task}, timeout=REFUSAL_WAIT_S)
        if task.done() and not task.cancelled() and isinstance(
                refused := task.exception(), PortsUnavailable | QueueFull):
            await store.delete(self.db, port_id)
            if isinstance(refused, QueueFull):
                raise PortRefused(429, str(refused), refused.retry_after_s)
            raise PortRefused(503, str(refused))
        return port_id

    def _admit(self, client: Client) -> None:
        """Hold a slot for the client's port, or refuse it."""
        if self._clients[client.learner] >= PORTS_PER_CLIENT:
            raise PortRefused(429, "You have a port running: wait for it to end.",
                              RETRY_AFTER_S)
        if self._addresses[client.address] >= PORTS_PER_ADDRESS:
            raise PortRefused(429, f"{PORTS_PER_ADDRESS} ports are running from your "
                                   "address: wait for one to end.", RETRY_AFTER_S)
        if sum(self._clients.values()) >= PORTS_IN_FLIGHT:
            raise PortRefused(429, "The server is busy porting models; try again soon.",
                              RETRY_AFTER_S)
        self._clients[client.learner] += 1
        self._addresses[client.address] += 1

    def _release(self, client: Client) -> None:
        for counter, key in ((self._clients, client.learner), (self._addresses, client.address)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def _model_path(self, port_id: str, order: PortOrder) -> Path:
        return self.folder(port_id) / f"model{order.suffix}"

    def _inputs_path(self, port_id: str, order: PortOrder) -> Path | None:
        return None if order.inputs is None else self.folder(port_id) / f"inputs{order.inputs}"

    def _run(self, port_id: str, order: PortOrder, client: Client) -> asyncio.Task[None]:
        """The port as a task, in the slot `_admit` held for the client (freed as it ends)."""
        task = asyncio.get_running_loop().create_task(self._port(port_id, order, client))
        self._tasks[port_id] = task

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled():
                done.exception()  # read here too: a refusal `start` no longer waits for
            self._tasks.pop(port_id, None)
            self._release(client)

        task.add_done_callback(ended)
        return task

    async def _port(self, port_id: str, order: PortOrder, client: Client) -> None:
        model = self._model_path(port_id, order) if order.filename else None
        inputs = self._inputs_path(port_id, order)
        try:
            report = await self.executor.port(order, model, self.folder(port_id) / "out",
                                              client, inputs)
        except asyncio.CancelledError:
            raise  # the server is stopping: the port runs again at the next start
        except (PortsUnavailable, QueueFull) as exc:  # `start` answers these when it can
            await self._finish(port_id, PortReport.failed(type(exc).__name__, str(exc), order))
            raise
        except Exception as exc:
            log.exception("port %s failed", port_id)
            report = PortReport.failed("PortError", f"the port could not run: {exc}", order)
        await self._finish(port_id, report)

    async def _finish(self, port_id: str, report: PortReport) -> None:
        folder = self.folder(port_id)
        if report.status == "failed" or self.file(port_id, "port.zip") is None:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            if report.status != "failed":  # a module without its files can't be offered
                report = report.model_copy(update={"status": "failed"})
        else:
            for upload in (*folder.glob("model.*"), *folder.glob("inputs.*")):
                upload.unlink(missing_ok=True)
        await store.finish(self.db, port_id, PortStatus(report.status),
                           report.model_dump(mode="json"))

    # ---- the app's lifespan ----------------------------------------------------------

    async def resume(self) -> None:
        """Run again the ports a restart interrupted; those whose upload is gone fail."""
        for record in await store.unfinished(self.db):
            order = PortOrder.model_validate(record.order)
            out = self.folder(record.id) / "out"
            shutil.rmtree(out, ignore_errors=True)
            inputs = self._inputs_path(record.id, order)
            if (order.filename and not self._model_path(record.id, order).is_file()) or (
                    inputs is not None and not inputs.is_file()):
                await self._finish(record.id, PortReport.failed(
                    "PortError", "the server restarted and the upload is gone: upload it "
                                 "again", order))
                continue
            out.mkdir(parents=True, exist_ok=True)
            self._clients[RESUMED.learner] += 1  # held as `_admit` holds, never refused
            self._addresses[RESUMED.address] += 1
            self._run(record.id, order, RESUMED)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def record(self, port_id: str) -> PortRecord | None:
        return await store.get(self.db, port_id)
