"""The output cache: results of a lesson's own, unedited code, in SQLite and in memory.

A result is keyed by its request (code, framework, run options) and by what
the executor runs it with (framework versions, device), so an upgrade or a
move to a GPU recomputes. A snippet that ran or raised is kept for good: it
says something about the snippet. One cut short by its own limits (time,
memory, output) is kept for `CUT_SHORT_KEEP_S`, so lesson views don't queue
the same doomed run again and again, yet a busy moment is not remembered for
ever. A run that never ran, or whose sandbox was lost, is not kept. The
lesson page reads the same few entries on every view, so finished results
are also kept in memory, bounded by bytes.
"""

from __future__ import annotations

import time
from typing import Any

from app.bytecache import ByteLRU
from app.store import outputs
from app.store.db import Database
from sandbox.executor import ExecutorContext
from sandbox.protocol import CapturedArray, RunRequest, RunResult, RunStatus

MEMO_BUDGET_BYTES = 64 * 2**20
MAX_ENTRY_BYTES = 4 * 1024 * 1024  # a bigger result runs again rather than fill the table
FINISHED = frozenset({RunStatus.ok, RunStatus.error})
CUT_SHORT = frozenset({RunStatus.timeout, RunStatus.memory, RunStatus.output_limit})
CUT_SHORT_KEEP_S = 600.0


class OutputCache:
    def __init__(self, db: Database, memo_budget_bytes: int = MEMO_BUDGET_BYTES) -> None:
        self.db = db
        self.memo: ByteLRU[str, RunResult] = ByteLRU(memo_budget_bytes)

    @staticmethod
    def key(request: RunRequest, context: ExecutorContext) -> str:
        return outputs.cache_key(request=request.model_dump(mode="json"),
                                 versions=context.versions, device=context.device)

    async def get_many(self, keys: list[str]) -> list[RunResult | None]:
        # Hits are taken before loading the misses, which may push them out of the memo.
        found = {k: hit for k in keys if (hit := self.memo.get(k)) is not None}
        missing = [k for k in keys if k not in found]
        now = time.time()
        for key, body in (await outputs.get_many(self.db, missing)).items():
            if body.get("until", now + 1) < now:
                continue  # a cut-short run, kept for a while only: it runs again
            found[key] = load(body)
            if found[key].status in FINISHED:
                self._remember(key, found[key])
        return [found.get(k) for k in keys]

    async def put(self, key: str, result: RunResult) -> bool:
        """Keep a result (a cut-short one for a while); False when it is not one to keep."""
        if result.status not in FINISHED | CUT_SHORT:
            return False
        size = result_bytes(result)  # a JSON dump of the whole result: weighed once
        if size >= MAX_ENTRY_BYTES:
            return False
        body = dump(result)
        if result.status in CUT_SHORT:
            body["until"] = time.time() + CUT_SHORT_KEEP_S
        await outputs.put(self.db, key, body)
        if result.status in FINISHED:
            self._remember(key, result, size)
        return True

    def _remember(self, key: str, result: RunResult, size: int | None = None) -> None:
        self.memo.put(key, result, result_bytes(result) if size is None else size)


def result_bytes(result: RunResult) -> int:
    """About what a result holds in memory: its JSON, plus the captured arrays it leaves out."""
    return len(result.model_dump_json()) + sum(
        len(c.data_b64 or "") for c in result.captured.values())


def dump(result: RunResult) -> dict[str, Any]:
    return {"result": result.model_dump(mode="json"),
            "captured": {k: v.model_dump(mode="json") for k, v in result.captured.items()}}


def load(body: dict[str, Any]) -> RunResult:
    result = RunResult.model_validate(body["result"])
    result.captured = {k: CapturedArray.model_validate(v) for k, v in body["captured"].items()}
    return result
