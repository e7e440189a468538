"""A learner's code as the instructor reads it: numbered lines, the failing one marked."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from app.store.class_learners import Code

SIDES = ("tensorflow", "pytorch")
_AT_LINE = re.compile(r"\(line (\d+)\)")  # as app.pipeline.records.error_line writes it


@dataclasses.dataclass(frozen=True)
class CodeSide:
    side: str
    lines: list[str]
    failing: int | None  # 1-based
    result: dict[str, Any] | None


def code_sides(code: Code) -> list[CodeSide]:
    out = []
    for side in SIDES:
        source: str | None = getattr(code, side)
        result = code.result.get(side)
        lines = source.splitlines() if source else []
        found = _AT_LINE.search(str(result.get("error") or "")) if result else None
        failing = int(found.group(1)) if found else None
        out.append(CodeSide(side, lines, failing if failing and failing <= len(lines) else None,
                            result))
    return out
