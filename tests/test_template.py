"""The template process on its own (sandbox/template.py); its spares are in test_pool.py."""

from __future__ import annotations

import pytest

from sandbox import hugepages, template
from sandbox.loop import Loop


def test_the_template_folds_its_heap_again_after_many_spares_once_quiet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    folds: list[int] = []
    monkeypatch.setattr(hugepages, "collapse_heap", lambda: folds.append(1) or 0)
    refold = template.Refold(Loop())
    for _ in range(template.Refold.EVERY - 1):
        refold.spawned()
    assert refold.timer is None
    refold.spawned()
    assert refold.timer is not None
    refold._fold()  # a spare was asked for just now: a burst may be on, so later
    assert folds == [] and refold.timer is not None
    refold.last -= template.Refold.QUIET_S
    refold._fold()
    assert folds == [1] and refold.count == 0
