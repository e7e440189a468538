"""The supervisors: inside the template, one per spare, each watching its run.

    template: one process, one loop (`Supervision`)
      ├── Supervisor ──socket to the pool──┐
      │      unshare(pid, mount, net, ipc); fork; setns back
      │      └──────────> run (pid 1 of its namespaces): stdout, stderr, result pipes
      └── Supervisor ... ──────────────────┘

A spare costs one fork of the template and nothing more: no process sits
between a run and the template, which makes the run's namespaces, forks
it, and steps back into its own. Supervisors hold no user code and trust
nothing a run sends. Each forwards the pool's order, keeps at most
`output_bytes` of each stream, validates the result frame (size first,
then `protocol.RunFinished`), and turns however the run ended into one
result frame for the pool. The deadline does not depend on the run's
pipes: a run can close them, flood them or write garbage, and it is still
killed when its time is up. Killing the run (pid 1 of its pid namespace)
takes every process the snippet started with it; runs get SIGKILL from
the kernel when the template dies (`PR_SET_PDEATHSIG`).

Every descriptor here is non-blocking and watched by one selector: a run
that stops reading or writing stalls nothing but itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import heapq
import itertools
import os
import selectors
import shutil
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Callable

from sandbox import runner, wire
from sandbox.cgroups import RunCgroup
from sandbox.isolation import RunNamespaces, is_real_root, set_parent_death_signal, tasks_in_view
from sandbox.limits import Limits
from sandbox.protocol import (
    ProtocolError,
    RunFinished,
    RunOrder,
    RunResult,
    RunStatus,
    SpareReady,
    SpawnSpare,
    parse_frame,
)

CGROUP_HEADROOM_MB = 512
WARM_UP_S = 120.0  # a spare that is not ready by then is given up
EXIT_DRAIN_S = 0.5  # after pid 1 exits, the kernel ends its namespace; pipes close at once
ORDER_MAX_BYTES = 2 * 1024 * 1024
REQUEST_FD, RESULT_FD = 3, 4  # in the run
CUT_MARKER = "\n[… output cut: more than {kib} KiB on this stream]\n"
Callback = Callable[[], None]


@dataclasses.dataclass
class Ending:
    """How a run ended when it did not hand over a result of its own."""

    status: RunStatus
    type: str
    message: str


class _Streams:
    def __init__(self, limits: Limits) -> None:
        self.limit = limits.output_bytes
        self.result_limit = limits.result_bytes
        self.data = {"stdout": bytearray(), "stderr": bytearray(), "result": bytearray()}
        self.over: str | None = None

    def take(self, name: str, chunk: bytes) -> None:
        buf = self.data[name]
        limit = self.result_limit + wire.HEADER.size if name == "result" else self.limit
        room = limit - len(buf)
        buf += chunk[:max(room, 0)]
        if len(chunk) > room:
            self.over = name

    def text(self, name: str) -> str:
        text = self.data[name].decode("utf-8", "backslashreplace")
        if self.over == name:
            text += CUT_MARKER.format(kib=self.limit // 1024)
        return text

    def frame(self) -> bytes | None:
        """The run's one frame once it is whole (None until then, or when it is too big)."""
        buf = self.data["result"]
        if len(buf) < wire.HEADER.size:
            return None
        (size,) = wire.HEADER.unpack(buf[:wire.HEADER.size])
        if size > self.result_limit:
            self.over = "result"
            return None
        end = wire.HEADER.size + size
        return bytes(buf[wire.HEADER.size:end]) if len(buf) >= end else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _ended_by_signal(sig: int, stderr: str, oom_killed: bool) -> Ending:
    if sig == signal.SIGXCPU:
        return Ending(RunStatus.timeout, "CPUTimeLimit", "the run used up its CPU time")
    if oom_killed or "bad_alloc" in stderr or "Cannot allocate memory" in stderr:
        return Ending(RunStatus.memory, "MemoryLimit",
                      "the run was stopped for using too much memory")
    return Ending(RunStatus.killed, "Crashed", f"the run ended with {_signal_name(sig)}")


class Timer:
    def __init__(self, callback: Callback) -> None:
        self.callback: Callback | None = callback

    def cancel(self) -> None:
        self.callback = None


class Supervision:
    """The template's loop: its control socket, every supervisor's descriptors, timers."""

    def __init__(self, secure: bool) -> None:
        self.secure = secure
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self.namespaces = RunNamespaces() if secure else None
        # Rootless runs share one uid: a run's process allowance is counted
        # from the sandbox's /proc when it starts (the run mounts its own).
        self.proc_fd = (os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                        if secure and not is_real_root() else None)
        # Every descriptor of the template's own: a run closes them all first.
        self.owned: set[int] = {self.selector.fileno()}
        if self.namespaces is not None:
            self.owned |= self.namespaces.fds
        if self.proc_fd is not None:
            self.owned.add(self.proc_fd)

    def watch(self, fd: int, events: int, callback: Callback) -> None:
        try:
            self.selector.modify(fd, events, callback)
        except KeyError:
            self.selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)

    def close(self, fd: int) -> None:
        self.unwatch(fd)
        self.owned.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def later(self, delay_s: float, callback: Callback) -> Timer:
        timer = Timer(callback)
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._order), timer))
        return timer

    def run_forever(self) -> None:
        while True:
            timeout = None
            while self._timers and self._timers[0][2].callback is None:
                heapq.heappop(self._timers)
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, _ in self.selector.select(timeout):
                # An earlier callback in this batch may have closed this fd, and
                # another spare may have its number now: only the current watcher runs.
                current = self.selector.get_map().get(key.fd)
                if current is not None and current.data is key.data:
                    self._call(key.data)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, timer = heapq.heappop(self._timers)
                if timer.callback is not None:
                    callback, timer.callback = timer.callback, None
                    self._call(callback)

    @staticmethod
    def _call(callback: Callback) -> None:
        # One supervisor's bug must not take the others' runs down with the
        # template; the pool hangs up on a spare that stops answering.
        try:
            callback()
        except Exception:
            traceback.print_exc()


class Supervisor:
    """One spare: warming, ready, running, ending. Only `Supervision` calls in."""

    def __init__(self, loop: Supervision, order: SpawnSpare) -> None:
        self.loop, self.secure = loop, loop.secure
        self.slot, self.framework = order.slot, order.framework
        self.warm_ups, self.fresh = order.warm_ups, order.fresh
        self.limits = order.limits
        self.wall_s = self.limits.wall_s
        self.phase = "warming"
        self.streams = _Streams(self.limits)  # warm-up chatter is not the snippet's output
        self.inbox = bytearray()  # the order, as it arrives from the pool
        self.outbox = bytearray()  # frames for the pool not yet sent
        self.request = b""  # the order, on its way to the run
        self.pid = 0
        self.exit_status: int | None = None
        self.cgroup: RunCgroup | None = None
        self.deadline: Timer | None = None
        if order.cgroup is not None:
            # Headroom over RLIMIT_DATA: ordinary bombs still end as a clean
            # MemoryError; the cgroup catches what rlimits can't see.
            self.cgroup = RunCgroup(order.cgroup.base, order.cgroup.version, order.name,
                                    self.limits.memory_mb + CGROUP_HEADROOM_MB)

    # ---- start ----------------------------------------------------------------

    def start(self) -> socket.socket:
        """Fork the spare; the returned socket is the pool's end."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self.workdir = "/tmp" if self.secure else tempfile.mkdtemp(prefix="sbs-run-")
        pipes = {name: os.pipe2(os.O_CLOEXEC) for name in ("stdout", "stderr", "result",
                                                              "request")}
        try:
            namespaces = self.loop.namespaces
            self.pid = namespaces.fork() if namespaces is not None else os.fork()
        except BaseException:
            theirs.close()
            for r, w in pipes.values():
                os.close(r)
                os.close(w)
            raise
        if self.pid == 0:
            self._become_run(pipes, theirs)
        self.pidfd = os.pidfd_open(self.pid)  # readable once pid 1 is gone, pipes or not
        self.fds: dict[int, str] = {}
        for name, (r, w) in pipes.items():
            os.close(r if name == "request" else w)
            fd = w if name == "request" else r
            os.set_blocking(fd, False)
            self.loop.owned.add(fd)
            if name == "request":
                self.request_fd = w
            else:
                self.fds[fd] = name
                self.loop.watch(fd, selectors.EVENT_READ, functools.partial(self._on_pipe, fd))
        ours.setblocking(False)
        self.loop.owned |= {ours.fileno(), self.pidfd}
        self.loop.watch(self.pidfd, selectors.EVENT_READ, self._on_exit)
        self.loop.watch(ours.fileno(), selectors.EVENT_READ, self._on_pool)
        self.warm_up_timer = self.loop.later(WARM_UP_S, self._end)
        return theirs

    def _become_run(self, pipes: dict[str, tuple[int, int]], pool_end: socket.socket) -> None:
        code = 0
        try:
            set_parent_death_signal()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            pool_end.close()
            self.sock.close()
            for fd in self.loop.owned:  # the control socket, other spares' pipes and sockets
                with contextlib.suppress(OSError):
                    os.close(fd)
            # The run's own descriptors as 1 and 2 (stdout, stderr), 3 (its order) and
            # 4 (its result), whatever numbers the template's many pipes had.
            keep = {1: pipes["stdout"][1], 2: pipes["stderr"][1],
                    REQUEST_FD: pipes["request"][0], RESULT_FD: pipes["result"][1]}
            moved = {to: fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for to, fd in keep.items()}
            for r, w in pipes.values():
                os.close(r)
                os.close(w)
            for to, fd in moved.items():
                os.dup2(fd, to, inheritable=to <= 2)  # a subprocess inherits stdio only
                os.close(fd)
            os.chdir(self.workdir)
            runner.serve_one(REQUEST_FD, RESULT_FD, self.limits,
                             self.slot, self.secure, self.framework, self.warm_ups, self.fresh,
                             self.cgroup)
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)

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
            if self.phase == "draining" and not self.fds:
                self._finish(None)
            return
        self.streams.take(self.fds[fd], chunk)
        if self.phase == "warming":
            self._check_ready()
        elif self.phase in ("running", "draining") and (
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
            self.phase = "ready"
            self.streams = _Streams(self.limits)
            self._send(wire.encode(ready.model_dump()))

    def _on_pool(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the pool hung up or gave the spare up: no one wants a result
            self._end()
            return
        if self.phase != "ready":
            return  # the pool says nothing else
        self.inbox += data
        if len(self.inbox) < wire.HEADER.size:
            return
        (size,) = wire.HEADER.unpack(self.inbox[:wire.HEADER.size])
        if size > ORDER_MAX_BYTES:
            self._end()
        elif len(self.inbox) >= wire.HEADER.size + size:
            try:
                order = parse_frame(RunOrder, bytes(self.inbox[wire.HEADER.size:]))
            except (ProtocolError, ValueError):
                self._end()
                return
            self._start_run(order)

    def _start_run(self, order: RunOrder) -> None:
        self.phase = "running"
        self.wall_s = order.wall_s
        self.deadline = self.loop.later(order.wall_s, self._on_deadline)
        if self.loop.proc_fd is not None:
            order.shared_tasks = tasks_in_view(self.loop.proc_fd)
        self.request = wire.encode(order.model_dump())
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
        self._finish(Ending(RunStatus.timeout, "TimeLimit",
                            f"the run took longer than {self.wall_s:g} s"))

    def _on_exit(self) -> None:
        """pid 1 is gone: reap it, then take what is left in the pipes."""
        self.loop.close(self.pidfd)
        _, self.exit_status = os.waitpid(self.pid, 0)  # it exited: this cannot block
        self.pid = 0
        if self.phase == "running":
            self.phase = "draining"
            if not self.fds:
                self._finish(None)
            else:
                self.loop.later(EXIT_DRAIN_S, lambda: self._finish(None))
        elif self.phase in ("warming", "ready"):
            self._end()  # a spare that died before its run: the pool replaces it
        elif self.phase == "ended":
            self._clean_up()

    # ---- ending ---------------------------------------------------------------

    def _finish(self, ending: Ending | None) -> None:
        if self.phase not in ("running", "draining"):
            return
        frame = self.streams.frame() if self.streams.over != "result" else None
        if ending is None and frame is None and not self.streams.over:
            ending = self._how_it_ended()
        self._kill()
        # What the run wrote before it was stopped is in the pipes already; don't
        # wait for a heavy process to be torn down before the learner sees the result.
        for fd in list(self.fds):
            with contextlib.suppress(OSError):
                while self.fds.get(fd) and (chunk := os.read(fd, 65536)):
                    self.streams.take(self.fds[fd], chunk)
        if self.streams.over == "result":
            ending = Ending(RunStatus.error, "ResultTooLarge", "the run's values were too large")
        elif self.streams.over:
            ending = Ending(RunStatus.output_limit, "OutputLimit", f"the run printed more than "
                            f"{self.limits.output_bytes // 1024} KiB to {self.streams.over}")
        result = self._result(frame, ending)
        self._send(wire.encode(RunFinished(result=result).to_wire()))
        self._end()

    def _how_it_ended(self) -> Ending:
        status = self.exit_status
        if status is not None and os.WIFSIGNALED(status):
            oom = self.cgroup is not None and self.cgroup.oom_killed()
            return _ended_by_signal(os.WTERMSIG(status), self.streams.text("stderr"), oom)
        return Ending(RunStatus.killed, "Crashed", "the run ended without a result")

    def _result(self, frame: bytes | None, ending: Ending | None) -> RunResult:
        result = None
        if ending is None and frame is not None:
            try:
                result = parse_frame(RunFinished, frame).result
            except ProtocolError as exc:
                ending = Ending(RunStatus.killed, "ProtocolError",
                                f"the run sent a malformed result ({exc}); it was stopped")
        if result is None:
            if ending is None:
                ending = Ending(RunStatus.killed, "Crashed", "the run ended without a result")
            result = RunResult.failed(ending.status, ending.type, ending.message)
        result.stdout = self.streams.text("stdout")
        result.stderr = self.streams.text("stderr")
        return result

    def _send(self, frame: bytes) -> None:
        self.outbox += frame
        self._flush()

    def _flush(self) -> None:
        try:
            while self.outbox:
                del self.outbox[:self.sock.send(self.outbox)]
        except BlockingIOError:
            self.loop.watch(self.sock.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE,
                            self._on_pool_ready)
            return
        except OSError:
            self.outbox.clear()
        if self.phase == "ended":
            self._close_pool()
        else:
            self.loop.watch(self.sock.fileno(), selectors.EVENT_READ, self._on_pool)

    def _on_pool_ready(self) -> None:
        if self.outbox:
            self._flush()
        else:
            self._on_pool()

    def _end(self) -> None:
        """No more to say to the pool: kill the run, and clean up once it is gone."""
        if self.phase == "ended":
            return
        self.phase = "ended"
        for timer in (self.deadline, self.warm_up_timer):
            if timer is not None:
                timer.cancel()
        self._kill()
        for fd in self.fds:
            self.loop.close(fd)
        self.fds.clear()
        self._close_request()
        if not self.outbox:
            self._close_pool()
        if self.pid == 0:
            self._clean_up()

    def _close_pool(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.close(self.sock.fileno())
            self.sock.detach()

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


def supervise(loop: Supervision, order: SpawnSpare) -> tuple[socket.socket, int]:
    """Start a spare under a new supervisor; the pool's end of its socket, and its pid."""
    supervisor = Supervisor(loop, order)
    pool_end = supervisor.start()
    return pool_end, supervisor.pid
