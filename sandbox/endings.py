"""How a run ended, when it did not hand over a result of its own.

One pure function (`how_it_ended`) over what the supervisor saw: why it
stopped the run, whether a whole result frame came, which pipe went over
its cap, how pid 1 exited, and what it printed on stderr. The rules, in
order: a result over its cap, then a stream over its cap, then the
supervisor's own reason (the deadline), then the run's result; failing all
of these, the signal that ended it, or a crash.
"""

from __future__ import annotations

import dataclasses
import os
import signal

from sandbox.protocol import RunStatus
from sandbox.reassembly import Pipe

# What allocators print on their way down when the memory cgroup ends them.
OUT_OF_MEMORY_WORDS = ("bad_alloc", "Cannot allocate memory")


@dataclasses.dataclass(frozen=True)
class Ending:
    status: RunStatus
    type: str
    message: str


def timed_out(wall_s: float) -> Ending:
    return Ending(RunStatus.timeout, "TimeLimit", f"the run took longer than {wall_s:g} s")


def malformed(reason: object) -> Ending:
    return Ending(RunStatus.killed, "ProtocolError",
                  f"the run sent a malformed result ({reason}); it was stopped")


NO_RESULT = Ending(RunStatus.killed, "Crashed", "the run ended without a result")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def by_signal(sig: int, stderr: str, oom_killed: bool) -> Ending:
    if sig == signal.SIGXCPU:
        return Ending(RunStatus.timeout, "CPUTimeLimit", "the run used up its CPU time")
    if oom_killed or any(words in stderr for words in OUT_OF_MEMORY_WORDS):
        return Ending(RunStatus.memory, "MemoryLimit",
                      "the run was stopped for using too much memory")
    return Ending(RunStatus.killed, "Crashed", f"the run ended with {signal_name(sig)}")


def how_it_ended(*, cause: Ending | None, has_frame: bool, over: Pipe | None,
                 exit_status: int | None, stderr: str, oom_killed: bool,
                 output_bytes: int) -> Ending | None:
    """The run's ending; None when its own result frame is the answer.

    `cause`: why the supervisor stopped it, if it did (the deadline).
    `exit_status`: as `waitpid` gave it, None while pid 1 was still alive.
    `oom_killed`: the run's memory cgroup says the kernel's OOM killer struck.
    """
    if over is Pipe.result:
        return Ending(RunStatus.error, "ResultTooLarge", "the run's values were too large")
    if over is not None:
        return Ending(RunStatus.output_limit, "OutputLimit",
                      f"the run printed more than {output_bytes // 1024} KiB to {over}")
    if cause is not None:
        return cause
    if has_frame:
        return None
    if exit_status is not None and os.WIFSIGNALED(exit_status):
        return by_signal(os.WTERMSIG(exit_status), stderr, oom_killed)
    return NO_RESULT
