"""How a run ended (sandbox/endings.py): the rules, one by one, without a process."""

from __future__ import annotations

import signal
from typing import Any

from sandbox import endings
from sandbox.endings import Ending, how_it_ended
from sandbox.protocol import RunStatus
from sandbox.reassembly import Pipe

KILLED_BY_SIGKILL = signal.SIGKILL  # a waitpid status: the signal in the low bits
EXITED_0 = 0
DEADLINE = endings.timed_out(2)


def ended(**facts: Any) -> Ending | None:
    given: dict[str, Any] = {"cause": None, "has_frame": False, "over": None,
                             "exit_status": None, "stderr": "", "oom_killed": False,
                             "output_bytes": 256 * 1024}
    return how_it_ended(**{**given, **facts})


def test_a_run_that_handed_over_its_result_is_answered_by_it() -> None:
    assert ended(has_frame=True, exit_status=EXITED_0) is None
    assert ended(has_frame=True) is None  # pid 1 not yet reaped: the frame is enough


def test_the_deadline_wins_over_a_result_that_came_too_late() -> None:
    assert ended(cause=DEADLINE, has_frame=True) == DEADLINE
    assert DEADLINE.status == RunStatus.timeout and DEADLINE.message.endswith("2 s")


def test_a_stream_over_its_cap_ends_the_run_whatever_else_happened() -> None:
    for facts in ({}, {"has_frame": True}, {"cause": DEADLINE}):
        ending = ended(over=Pipe.stderr, **facts)
        assert ending is not None and ending.status == RunStatus.output_limit
        assert ending.message == "the run printed more than 256 KiB to stderr"


def test_a_result_over_its_cap_comes_before_everything() -> None:
    ending = ended(over=Pipe.result, has_frame=True, cause=DEADLINE)
    assert ending is not None and (ending.status, ending.type) == (RunStatus.error,
                                                                  "ResultTooLarge")


def test_a_run_that_died_of_a_signal_says_which() -> None:
    ending = ended(exit_status=KILLED_BY_SIGKILL)
    assert ending == Ending(RunStatus.killed, "Crashed", "the run ended with SIGKILL")


def test_running_out_of_cpu_time_is_a_timeout() -> None:
    ending = ended(exit_status=signal.SIGXCPU)
    assert ending is not None and (ending.status, ending.type) == (RunStatus.timeout,
                                                                  "CPUTimeLimit")


def test_the_oom_killer_or_an_allocators_last_words_mean_memory() -> None:
    for facts in ({"oom_killed": True}, {"stderr": "terminate called: std::bad_alloc"},
                  {"stderr": "mmap: Cannot allocate memory"}):
        ending = ended(exit_status=KILLED_BY_SIGKILL, **facts)
        assert ending is not None and ending.status == RunStatus.memory, facts


def test_a_run_that_exited_without_a_result_crashed() -> None:
    assert ended(exit_status=EXITED_0) == endings.NO_RESULT
    assert ended() == endings.NO_RESULT
    assert endings.NO_RESULT.status == RunStatus.killed


def test_an_unknown_signal_number_is_still_named() -> None:
    assert endings.signal_name(200) == "signal 200"
