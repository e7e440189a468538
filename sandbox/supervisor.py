"""The supervisors: inside the template, one per spare, each watching its run.

    template: one process, one loop (`Supervision`)
      ├── Supervisor ──socket to the pool (pool_link.py)──┐
      │      unshare(pid, mount, net, ipc); fork; setns back
      │      └──────────> run (pid 1 of its namespaces): stdout, stderr, result pipes
      └── Supervisor ... ──────────────────┘

A spare costs one fork of the template and nothing more: no process sits
between a run and the template, which makes the run's namespaces, forks
it, and steps back into its own. Supervisors hold no user code and trust
nothing a run sends. Each forwards the pool's order, keeps at most
`output_bytes` of each stream and one result frame within its cap
(`reassembly.py`), validates the frame (`messages.RunFinished`), and turns
however the run ended (`endings.py`) into one result frame for the pool.
The deadline does not depend on the run's pipes: a run can close them,
flood them or write garbage, and it is still killed when its time is up.
Killing the run (pid 1 of its pid namespace) takes every process the
snippet started with it; runs get SIGKILL from the kernel when the
template dies (`PR_SET_PDEATHSIG`).

A supervisor's phases: warming (the spare warms up) → ready (its
`SpareReady` went to the pool) → running (the order went to the run) →
draining (pid 1 exited; the pipes still hold its last words) → ended. A
spare that dies, or a pool that hangs up, ends it from any phase.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import selectors
import shutil
import signal
import socket
import tempfile

from sandbox import endings, runner, wire
from sandbox.cgroups import RunCgroup
from sandbox.endings import Ending
from sandbox.loop import Loop, Timer
from sandbox.messages import RunFinished, RunOrder, SpareReady, SpawnSpare
from sandbox.namespaces import RunNamespaces, is_real_root
from sandbox.pool_link import PoolLink
from sandbox.protocol import RunResult
from sandbox.reassembly import Pipe, RunStreams
from sandbox.rlimits import tasks_in_view
from sandbox.wire import ProtocolError, parse_frame

CGROUP_HEADROOM_MB = 512
WARM_UP_S = 120.0  # a spare that is not ready by then is given up
EXIT_DRAIN_S = 0.5  # after pid 1 exits, the kernel ends its namespace; pipes close at once


class Phase(enum.Enum):
    warming = enum.auto()
    ready = enum.auto()
    running = enum.auto()
    draining = enum.auto()
    ended = enum.auto()


class Supervision(Loop):
    """The template's loop, and what its supervisors share: the runs' namespaces, /proc."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self.secure = secure
        self.namespaces = RunNamespaces() if secure else None
        # Rootless runs share one uid: a run's process allowance is counted
        # from the sandbox's /proc when it starts (the run mounts its own).
        self.proc_fd = (os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                        if secure and not is_real_root() else None)
        # Every descriptor of the template's own: a run closes them all first.
        if self.namespaces is not None:
            self.owned |= self.namespaces.fds
        if self.proc_fd is not None:
            self.owned.add(self.proc_fd)


class Supervisor:
    """One spare: warming, ready, running, ending. Only `Supervision` calls in."""

    def __init__(self, loop: Supervision, order: SpawnSpare, files: tuple[int, ...] = ()) -> None:
        self.loop, self.secure, self.order = loop, loop.secure, order
        self.files = files  # a port's model file and archive: the run's, never the template's
        self.limits = order.limits
        self.wall_s = self.limits.wall_s
        self.phase = Phase.warming
        self.streams = RunStreams(self.limits)  # warm-up chatter is not the snippet's output
        self.request = b""  # the order, on its way to the run
        self.pid = 0
        self.exit_status: int | None = None
        self.cgroup: RunCgroup | None = None
        self.deadline: Timer | None = None
        if order.cgroup is not None:
            # Headroom over RLIMIT_DATA: ordinary bombs still end as a clean
            # MemoryError; the cgroup catches what rlimits can't see.
            self.cgroup = RunCgroup(order.cgroup.base, order.cgroup.version, order.name,
                                    self.limits.memory_mb + CGROUP_HEADROOM_MB,
                                    order.cgroup.cpu_base)

    # ---- start ----------------------------------------------------------------

    def start(self) -> socket.socket:
        """Fork the spare; the returned socket is the pool's end."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.workdir = "/tmp" if self.secure else tempfile.mkdtemp(prefix="sbs-run-")
        pipes = runner.Pipes.make()
        try:
            namespaces = self.loop.namespaces
            self.pid = namespaces.fork() if namespaces is not None else os.fork()
        except BaseException:
            theirs.close()
            pipes.close()
            raise
        if self.pid == 0:
            theirs.close()
            ours.close()
            runner.become_run(pipes, self.loop.owned, self.workdir, self.order, self.secure,
                              self.cgroup, self.files)
        self.pidfd = os.pidfd_open(self.pid)  # readable once pid 1 is gone, pipes or not
        self.request_fd = pipes.keep_parent_ends()
        self.fds = {pipes.stdout[0]: Pipe.stdout, pipes.stderr[0]: Pipe.stderr,
                    pipes.result[0]: Pipe.result}
        for fd in (*self.fds, self.request_fd):
            os.set_blocking(fd, False)
            self.loop.owned.add(fd)
        for fd in self.fds:
            self.loop.watch(fd, selectors.EVENT_READ, functools.partial(self._on_pipe, fd))
        self.loop.owned.add(self.pidfd)
        self.loop.watch(self.pidfd, selectors.EVENT_READ, self._on_exit)
        self.pool = PoolLink(self.loop, ours, self._start_run, self._end)
        self.warm_up_timer = self.loop.later(WARM_UP_S, self._end)
        return theirs

    # ---- events -----------------------------------------------------------------

    def _on_pipe(self, fd: int) -> None:
        if fd not in self.fds:
            return
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            del self.fds[fd]
            self.loop.close(fd)
            if self.phase is Phase.draining and not self.fds:
                self._finish(None)
            return
        self.streams.take(self.fds[fd], chunk)
        if self.phase is Phase.warming:
            self._check_ready()
        elif self.phase in (Phase.running, Phase.draining) and (
                self.streams.over or self.streams.frame() is not None):
            self._finish(None)  # done: don't wait for a heavy process to exit

    def _check_ready(self) -> None:
        frame = self.streams.frame()
        if self.streams.over:
            self._end()
        elif frame is not None:
            try:
                ready = parse_frame(SpareReady, frame)
            except ProtocolError:
                self._end()
                return
            self.warm_up_timer.cancel()
            self.phase = Phase.ready
            self.streams = RunStreams(self.limits)
            self.pool.awaiting_order = True
            self.pool.send(wire.encode(ready))

    def _start_run(self, order: RunOrder) -> None:
        self.phase = Phase.running
        self.wall_s = order.wall_s
        self.deadline = self.loop.later(order.wall_s, self._on_deadline)
        if self.cgroup is not None:
            self.cgroup.limit_cpu(self.limits.cpus)  # before the code reaches the run
        if self.loop.proc_fd is not None:
            order.shared_tasks = tasks_in_view(self.loop.proc_fd)
        self.request = wire.encode(order)
        self._write_request()

    def _write_request(self) -> None:
        try:
            self.request = self.request[os.write(self.request_fd, self.request):]
        except BlockingIOError:
            pass
        except OSError:
            self.request = b""  # the spare died while waiting: its exit status tells why
        if self.request:
            self.loop.watch(self.request_fd, selectors.EVENT_WRITE, self._write_request)
        else:
            self._close_request()

    def _close_request(self) -> None:
        if self.request_fd >= 0:
            self.loop.close(self.request_fd)
            self.request_fd = -1

    def _on_deadline(self) -> None:
        self._finish(endings.timed_out(self.wall_s))

    def _on_exit(self) -> None:
        """pid 1 is gone: reap it, then take what is left in the pipes."""
        self.loop.close(self.pidfd)
        _, self.exit_status = os.waitpid(self.pid, 0)  # it exited: this cannot block
        self.pid = 0
        if self.phase is Phase.running:
            self.phase = Phase.draining
            if not self.fds:
                self._finish(None)
            else:
                self.loop.later(EXIT_DRAIN_S, lambda: self._finish(None))
        elif self.phase in (Phase.warming, Phase.ready):
            self._end()  # a spare that died before its run: the pool replaces it
        elif self.phase is Phase.ended:
            self._clean_up()

    # ---- ending ---------------------------------------------------------------

    def _finish(self, cause: Ending | None) -> None:
        if self.phase not in (Phase.running, Phase.draining):
            return
        frame = self.streams.frame()  # what the run handed over in time
        self._kill()
        # What the run wrote before it was stopped is in the pipes already; don't
        # wait for a heavy process to be torn down before the learner sees the result.
        for fd in list(self.fds):
            with contextlib.suppress(OSError):
                while self.fds.get(fd) and (chunk := os.read(fd, 65536)):
                    self.streams.take(self.fds[fd], chunk)
        ending = endings.how_it_ended(
            cause=cause, has_frame=frame is not None, over=self.streams.over,
            exit_status=self.exit_status, stderr=self.streams.text(Pipe.stderr),
            oom_killed=self._oom_killed(), output_bytes=self.limits.output_bytes)
        result = self._result(frame, ending)
        self.pool.send(wire.encode(RunFinished.of(result)))
        self._end()

    def _oom_killed(self) -> bool:
        """Asked of the cgroup only when a signal ended the run."""
        status = self.exit_status
        return (status is not None and os.WIFSIGNALED(status) and self.cgroup is not None
                and self.cgroup.oom_killed())

    def _result(self, frame: bytes | None, ending: Ending | None) -> RunResult:
        result = None
        if ending is None and frame is not None:
            try:
                result = parse_frame(RunFinished, frame).result
            except ProtocolError as exc:
                ending = endings.malformed(exc)
        if result is None:
            ending = ending or endings.NO_RESULT
            result = RunResult.failed(ending.status, ending.type, ending.message)
        result.stdout = self.streams.text(Pipe.stdout)
        result.stderr = self.streams.text(Pipe.stderr)
        return result

    def _end(self) -> None:
        """No more to say to the pool: kill the run, and clean up once it is gone."""
        if self.phase is Phase.ended:
            return
        self.phase = Phase.ended
        for timer in (self.deadline, self.warm_up_timer):
            if timer is not None:
                timer.cancel()
        self._kill()
        for fd in self.fds:
            self.loop.close(fd)
        self.fds.clear()
        self._close_request()
        self.pool.close_when_sent()
        if self.pid == 0:
            self._clean_up()

    def _kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def _clean_up(self, tries: int = 50) -> None:
        """Its cgroup and files, once pid 1 is reaped (its last processes may take a moment)."""
        if self.cgroup is not None:
            self.cgroup.remove()
            if self.cgroup.path.exists() and tries > 1:
                self.loop.later(0.02, lambda: self._clean_up(tries - 1))
                return
        if not self.secure:
            shutil.rmtree(self.workdir, ignore_errors=True)


def supervise(loop: Supervision, order: SpawnSpare,
              files: tuple[int, ...] = ()) -> tuple[socket.socket, int]:
    """Start a spare under a new supervisor; the pool's end of its socket, and its pid."""
    supervisor = Supervisor(loop, order, files)
    pool_end = supervisor.start()
    return pool_end, supervisor.pid
