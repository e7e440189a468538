"""Task states from Celery's Redis result backend, as they are stored, without blocking the loop.

The backend stores each state under `celery-task-meta-<id>` and publishes it
on a channel of the same name. One pattern subscription on the web's loop
takes them all and hands each to the run waiting for it: no thread per
waiting run, and no polling. Celery's own `AsyncResult.get` blocks a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio

log = logging.getLogger("sidebyside.remote")
# A state is the worker's claim: past this it is refused unread (results are capped
# well below it by the worker's own pool).
MAX_STATE_BYTES = 64 * 2**20
RECONNECT_S = 0.5


class TaskState:
    def __init__(self, status: str, result: Any) -> None:
        self.status, self.result = status, result


def parse_state(data: bytes) -> TaskState | None:
    """A stored task state, or None when it is not one."""
    if len(data) > MAX_STATE_BYTES:
        return None
    try:
        meta = json.loads(data)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("status"), str):
        return None
    return TaskState(meta["status"], meta.get("result"))


class ResultListener:
    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix  # the backend's key for a task id, less the id
        self.ready = asyncio.Event()  # subscribed: states published from now on arrive
        self._inboxes: dict[str, asyncio.Queue[bytes]] = {}

    @contextlib.contextmanager
    def expect(self, task_id: str) -> Iterator[asyncio.Queue[bytes]]:
        """The states of one task, from now until the block ends."""
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._inboxes[task_id] = inbox
        try:
            yield inbox
        finally:
            del self._inboxes[task_id]

    async def stored(self, task_id: str) -> bytes | None:
        """The last state stored, for a run whose message may have been missed (reconnects)."""
        try:
            value = await self.client.get(self.prefix + task_id)
        except (redis.RedisError, OSError):
            return None
        return value if isinstance(value, bytes) else None

    async def listen(self) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.psubscribe(self.prefix + "*")
                    async for message in pubsub.listen():
                        self._dispatch(message)
            except (redis.RedisError, OSError) as exc:
                if self.ready.is_set():  # once per outage, not every half second of it
                    log.warning("result subscription lost (%r); subscribing again", exc)
            self.ready.clear()
            await asyncio.sleep(RECONNECT_S)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            self.ready.set()
            return
        if message["type"] != "pmessage":
            return
        channel = message["channel"].decode("utf-8", "replace")
        inbox = self._inboxes.get(channel[len(self.prefix):])
        if inbox is not None:
            inbox.put_nowait(message["data"])
