"""Resource limits and priority: what one run may use, and who goes first.

Every limit is a field of `limits.Limits`; `apply_limits` sets them all in
one place. Runs are niced below the server and the pool, spares below runs,
and every run goes first to the kernel's OOM killer.
"""

from __future__ import annotations

import contextlib
import os
import resource

from sandbox import gpu
from sandbox.limits import Limits

RUN_NICE = 5  # the server and the pool's own work come before any run
SPARE_NICE = 10  # and runs come before spares warming up for later ones
# Rootless only: tasks other spares may add after a spare was fenced in.
ROOTLESS_TASK_HEADROOM = 1024


def lower_priority() -> None:
    """Below the server for the CPU, below runs while warming up; first for the OOM killer.

    RLIMIT_NICE lets the spare climb back to RUN_NICE when its run arrives
    (`run_priority`). Where it can't be raised (rootless), spares warm up at
    RUN_NICE instead.
    """
    try:
        resource.setrlimit(resource.RLIMIT_NICE, (20 - RUN_NICE, 20 - RUN_NICE))
        os.nice(SPARE_NICE)
    except (OSError, ValueError):
        os.nice(RUN_NICE)
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")


def run_priority() -> None:
    """From a spare's priority to a run's, for every thread the warm-up started."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(tid), RUN_NICE)


def limit_processes(limits: Limits, shared_tasks: int) -> None:
    """Rootless: the run's own allowance on top of the tasks the sandbox holds right now."""
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    resource.setrlimit(resource.RLIMIT_NPROC, (min(hard, limits.processes + shared_tasks), hard))


def tasks_in_view(proc: int | None = None) -> int:
    """Processes and threads in a /proc (by default this process's; else an open fd of one)."""
    count = 0
    for pid in os.listdir("/proc" if proc is None else proc):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if proc is None:
                    count += len(os.listdir(f"/proc/{pid}/task"))
                    continue
                task = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
                try:
                    count += len(os.listdir(task))
                finally:
                    os.close(task)
    return count


def apply_limits(limits: Limits, shared_tasks: int = 0) -> None:
    mib = 1024 * 1024
    # With a GPU in view, no RLIMIT_AS: the CUDA driver reserves address space
    # for unified addressing as large as the device's and the host's memory
    # together, and a context can't be made under a smaller one. Those
    # reservations map nothing (PROT_NONE): RLIMIT_DATA and the cgroup still
    # bound what a run writes.
    address_space = (resource.RLIM_INFINITY if gpu.present()
                     else limits.address_space_mb * mib)
    for which, value in (
        (resource.RLIMIT_DATA, limits.memory_mb * mib),
        (resource.RLIMIT_AS, address_space),
        # CPU: the hard limit leaves room for the longest timeout a request may
        # ask for; the run lowers its soft limit once it knows its request.
        (resource.RLIMIT_CPU, int(limits.max_timeout_s * 2) + 2),
        (resource.RLIMIT_NPROC, limits.processes + shared_tasks),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def limit_cpu_seconds(seconds: int) -> None:
    """The run's CPU budget from now on, hard: SIGXCPU when spent, SIGKILL a second later.

    Both limits come down to the budget. A soft limit alone would bind nothing:
    the snippet may raise its own soft limit up to the hard one, and the hard
    one was set, before the request was known, for the longest a request may ask.
    """
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    budget = min(spent + seconds, hard - 1)
    resource.setrlimit(resource.RLIMIT_CPU, (budget, budget + 1))
