"""The per-run fence as a whole (sandbox/isolation.py); each threat it holds is in test_sandbox_hostile.py."""

from __future__ import annotations

import pytest

from sandbox.isolation import SandboxUnavailable, check_sandbox


def test_this_host_can_build_the_fence_runs_need() -> None:
    try:
        check_sandbox()  # bubblewrap's namespaces, then confine_run in them, in a probe
    except SandboxUnavailable as exc:
        pytest.fail(f"the sandbox's own tests need a host that can isolate runs: {exc}")
