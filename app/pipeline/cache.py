"""The output cache: results of a lesson's own, unedited code, in SQLite and in memory.

A result is keyed by its request (code, framework, run options) and by what
the executor runs it with (framework versions, device), so an upgrade or a
move to a GPU recomputes. Only finished runs are kept: a snippet that ran or
raised says something about the snippet; a timeout or a lost sandbox says
something about that moment. The lesson page reads the same few entries on
every view, so parsed entries are also kept in memory, bounded by bytes.
"""

from __future__ import annotations

from typing import Any

from app.bytecache import ByteLRU
from app.store import outputs
from app.store.db import Database
from sandbox.executor import ExecutorContext
from sandbox.protocol import CapturedArray, RunRequest, RunResult, RunStatus

MEMO_BUDGET_BYTES = 64 * 2**20
MAX_ENTRY_BYTES = 4 * 1024 * 1024  # a bigger result runs again rather than fill the table
CACHED_STATUSES = frozenset({RunStatus.ok, RunStatus.error})


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
        for key, body in (await outputs.get_many(self.db, missing)).items():
            found[key] = load(body)
            self._remember(key, found[key])
        return [found.get(k) for k in keys]

    async def put(self, key: str, result: RunResult) -> bool:
        """Keep a finished result; False when it is not one to keep."""
        if result.status not in CACHED_STATUSES:
            return False
        body = dump(result)
        if result_bytes(result) >= MAX_ENTRY_BYTES:
            return False
        await outputs.put(self.db, key, body)
        self._remember(key, result)
        return True

    def _remember(self, key: str, result: RunResult) -> None:
        self.memo.put(key, result, result_bytes(result))


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
