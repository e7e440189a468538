"""The web side's view of the workers: their heartbeats, read from Redis every second.

A worker writes one key with a TTL every couple of seconds; a worker that
dies stops writing and its key expires. Each beat is a worker's claim: it
must be sealed with the workers' secret and fresh (`remote.signing`), and is
then validated like any other message (`remote.messages.WorkerBeat`); the
slots it claims count up to `max_slots` at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio

from sandbox.protocol import Device
from sandbox.remote.celeryapp import BEAT_PREFIX, BEAT_TTL_S
from sandbox.remote.messages import WorkerBeat
from sandbox.remote.signing import Signer
from sandbox.wire import ProtocolError, parse_frame

log = logging.getLogger("sidebyside.remote")
POLL_EVERY_S = 1.0
MAX_WORKERS = 1000  # keys read per poll: a flood of made-up beats can't grow the web's memory
DEFAULT_MAX_SLOTS = 64  # slots one worker may claim (SIDEBYSIDE_WORKER_MAX_SLOTS)


class WorkerRegistry:
    def __init__(self, client: redis.asyncio.Redis, on_change: Callable[[], None],
                 signer: Signer, max_slots: int = DEFAULT_MAX_SLOTS) -> None:
        self.client, self.signer, self.max_slots = client, signer, max_slots
        self.on_change = on_change
        self.workers: dict[str, WorkerBeat] = {}
        self.polled_at = 0.0  # monotonic time the last successful poll began
        self.error: str | None = None  # why the last poll failed, if it did

    def slots(self, device: Device) -> int:
        """Runs the device's workers take at once (a worker whose sandbox restarts takes none)."""
        return sum(min(b.slots, self.max_slots) for b in self.workers.values()
                   if b.device == device and not b.degraded)

    def gone_since(self, name: str, since: float) -> bool:
        """True once a poll that began after `since` no longer finds the worker's beat."""
        return self.polled_at > since and name not in self.workers

    async def poll(self) -> None:
        began = time.monotonic()
        try:
            keys = []
            async for key in self.client.scan_iter(match=BEAT_PREFIX + "*", count=200):
                keys.append(key)
                if len(keys) >= MAX_WORKERS:
                    break
            values = await self.client.mget(keys) if keys else []
        except (redis.RedisError, OSError) as exc:
            # Keep the last view: runs in flight keep their deadlines, new ones still route.
            if self.error is None:
                log.warning("cannot read the workers' heartbeats: %r", exc)
            self.error = f"Redis unreachable: {exc}"
            return
        workers: dict[str, WorkerBeat] = {}
        for key, raw in zip(keys, values, strict=True):
            if not isinstance(raw, bytes):  # expired between the scan and the read
                continue
            try:
                beat = parse_frame(WorkerBeat, self.signer.open(
                    "beat", raw, max_age_s=BEAT_TTL_S).encode())
            except ProtocolError as exc:
                log.warning("ignoring a malformed heartbeat under %r: %s", key, exc)
                continue
            workers[beat.name] = beat
        self.workers, self.polled_at, self.error = workers, began, None
        self.on_change()

    async def watch(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(POLL_EVERY_S)
