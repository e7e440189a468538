"""The run's seccomp filter (sandbox/seccomp.py); what it refuses is proved in test_sandbox_hostile.py."""

from __future__ import annotations

from sandbox.seccomp import seccomp_program


def test_the_filter_is_compiled_once_into_plain_bpf() -> None:
    program = seccomp_program()
    assert len(program) % 8 == 0 and 20 < len(program) // 8 < 4096  # struct sock_filter
