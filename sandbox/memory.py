"""What the pool's processes hold in memory: proportional set size (PSS) of a process tree.

PSS splits each shared page between the processes that map it, so the
template and its forked spares add up to what they really cost.
"""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            continue
    return found


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass  # gone, or not ours to read (rootless: runs are not dumpable)
    return 0


def tree_pss_mb(*roots: int) -> tuple[float, int]:
    """(PSS in MiB, processes counted) of the `roots` and all their descendants."""
    total, counted, todo = 0, 0, list(roots)
    while todo:
        pid = todo.pop()
        kb = _pss_kb(pid)
        total += kb
        counted += kb > 0
        todo += children(pid)
    return total / 1024, counted
