"""The supervisor: one per run, between the pool and the run it watches.

    template ──fork──> supervisor ──unshare(pid, mount, net, ipc); fork──> run (pid 1)
                          │  socket to the pool                 │ stdout, stderr, result pipes
                          └──────────── relays, caps, times ────┘

It holds no user code and trusts nothing the run sends. It forwards the
order, keeps at most `output_bytes` of each stream, validates the result
frame (size first, then `protocol.RunFinished`), and turns however the run
ended into one result frame for the pool. The deadline does not depend on
the run's pipes: the run can close them, flood them or write garbage, and
it is still killed when its time is up. Killing the run (pid 1 of its pid
namespace) takes every process the snippet started with it, and a run
whose supervisor dies gets SIGKILL from the kernel (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shutil
import signal
import socket
import tempfile
import time
import traceback

from sandbox import runner, wire
from sandbox.cgroups import RunCgroup
from sandbox.isolation import (
    enter_run_namespaces,
    is_real_root,
    set_parent_death_signal,
    tasks_in_view,
)
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
CUT_MARKER = "\n[… output cut: more than {kib} KiB on this stream]\n"


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


class Supervisor:
    def __init__(self, sock: socket.socket, order: SpawnSpare, secure: bool) -> None:
        self.sock, self.slot, self.secure = sock, order.slot, secure
        self.framework = order.framework
        self.warm_functions = order.warm_functions
        limits = self.limits = order.limits
        cgroup = order.cgroup
        self.wall_s = limits.wall_s
        self.cgroup: RunCgroup | None = None
        self.pid = 0
        # Rootless runs share one uid: the supervisor counts the sandbox's tasks
        # when a run starts, through the sandbox's /proc (the run mounts its own
        # over it, in the mount namespace they share; the run never gets this fd).
        self.proc_fd = (os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
                        if secure and not is_real_root() else None)
        if cgroup is not None:
            # Headroom over RLIMIT_DATA: ordinary bombs still end as a clean
            # MemoryError; the cgroup catches what rlimits can't see.
            self.cgroup = RunCgroup(cgroup.base, cgroup.version, order.name,
                                    limits.memory_mb + CGROUP_HEADROOM_MB)

    def start_run(self) -> None:
        self.workdir = "/tmp" if self.secure else tempfile.mkdtemp(prefix="sbs-run-")
        if self.secure:
            enter_run_namespaces()
        pipes = {name: os.pipe() for name in ("stdout", "stderr", "result", "request")}
        self.pid = os.fork()
        if self.pid == 0:
            self._become_run(pipes)
        self.exited = os.pidfd_open(self.pid)  # readable once pid 1 is gone, pipes or not
        self.fds: dict[int, str] = {}
        for name, (r, w) in pipes.items():
            if name == "request":
                os.close(r)
                self.request_fd = w
            else:
                os.close(w)
                self.fds[r] = name

    def _become_run(self, pipes: dict[str, tuple[int, int]]) -> None:
        code = 0
        try:
            set_parent_death_signal()
            self.sock.close()
            if self.proc_fd is not None:
                os.close(self.proc_fd)
            os.dup2(pipes["stdout"][1], 1)
            os.dup2(pipes["stderr"][1], 2)
            for name, (r, w) in pipes.items():
                os.close(w if name == "request" else r)
                if name in ("stdout", "stderr"):
                    os.close(w)  # it lives on as 1 or 2
            os.chdir(self.workdir)
            runner.serve_one(pipes["request"][0], pipes["result"][1], self.limits,
                             self.slot, self.secure, self.framework, self.warm_functions,
                             self.cgroup)
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)

    def relay(self) -> None:
        """Pass the ready frame on, then the order in, then watch the run to its end.

        Whatever happens in here, `supervise` kills the run afterwards.
        """
        ready = self._warm_up()
        if ready is None:
            return
        self.sock.sendall(wire.encode(ready.model_dump()))
        order = self._read_order()
        if order is None:  # the pool went away or gave the spare up
            return
        self.wall_s = order.wall_s
        deadline = time.monotonic() + order.wall_s
        if self.proc_fd is not None:
            order.shared_tasks = tasks_in_view(self.proc_fd)
        try:
            wire.write_frame(self.request_fd, order.model_dump())
            os.close(self.request_fd)
        except OSError:
            pass  # the spare died while waiting: its exit status tells why
        result = self._watch(deadline)
        if result is not None:
            self.sock.sendall(wire.encode(RunFinished(result=result).to_wire()))

    def _warm_up(self) -> SpareReady | None:
        streams = _Streams(self.limits)  # warm-up chatter is not the snippet's output
        deadline = time.monotonic() + WARM_UP_S
        while time.monotonic() < deadline:
            if not self._wait(streams, deadline):
                return None
            frame = streams.frame()
            if frame is not None:
                try:
                    return parse_frame(SpareReady, frame)
                except ProtocolError:
                    return None
            if streams.over or "result" not in self.fds.values():
                return None
        return None

    def _read_order(self) -> RunOrder | None:
        try:
            message = wire.read_frame(self.sock.fileno(), max_bytes=2 * 1024 * 1024)
            return None if message is None else parse_frame(RunOrder, message)
        except (OSError, ValueError):
            return None

    def _wait(self, streams: _Streams, deadline: float) -> bool:
        """Read whatever is ready before `deadline`; False when the pool hung up or the run died."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        sock_fd = self.sock.fileno()
        readable, _, _ = select.select([*self.fds, sock_fd, self.exited], [], [], remaining)
        if sock_fd in readable and not self.sock.recv(4096):
            return False  # the pool hung up or gave the spare up
        for fd in readable:
            if fd in self.fds:
                self._read(fd, streams)
        return self.exited not in readable

    def _read(self, fd: int, streams: _Streams) -> None:
        chunk = os.read(fd, 65536)
        if chunk:
            streams.take(self.fds[fd], chunk)
        else:
            del self.fds[fd]
            os.close(fd)

    def _watch(self, deadline: float) -> RunResult | None:
        """Until a result, an exit, a limit or the deadline; None when the pool hung up."""
        streams = _Streams(self.limits)
        ending: Ending | None = None
        frame: bytes | None = None
        while True:
            if time.monotonic() >= deadline:
                ending = Ending(RunStatus.timeout, "TimeLimit",
                                f"the run took longer than {self.wall_s:g} s")
                break
            alive = self._wait(streams, deadline)
            if not alive and not self._exited():
                return None
            frame = streams.frame()
            if streams.over:
                break
            if frame is not None:
                break  # done: don't wait for a heavy process to exit
            if not alive:  # pid 1 is gone: take what is left in the pipes, then see how
                self._drain(streams)
                frame = streams.frame() if streams.over != "result" else None
                if frame is None:
                    ending = self._how_it_ended(streams)
                break
        self._kill()
        # What the run wrote before it was stopped is in the pipes already; don't
        # wait for a heavy process to be torn down before the learner sees the result.
        self._drain(streams, wait_s=0.0)
        if streams.over == "result":
            ending = Ending(RunStatus.error, "ResultTooLarge", "the run's values were too large")
        elif streams.over:
            ending = Ending(RunStatus.output_limit, "OutputLimit", f"the run printed more than "
                            f"{self.limits.output_bytes // 1024} KiB to {streams.over}")
        return self._result(streams, frame, ending)

    def _result(self, streams: _Streams, frame: bytes | None,
                ending: Ending | None) -> RunResult:
        result = None
        if ending is None and frame is not None:
            try:
                result = parse_frame(RunFinished, frame).result
            except ProtocolError as exc:
                ending = Ending(RunStatus.killed, "ProtocolError",
                                f"the run sent a malformed result ({exc}); it was stopped")
        if result is None:
            assert ending is not None
            result = RunResult.failed(ending.status, ending.type, ending.message)
        result.stdout = streams.text("stdout")
        result.stderr = streams.text("stderr")
        return result

    def _exited(self) -> bool:
        readable, _, _ = select.select([self.exited], [], [], 0)
        return bool(readable)

    def _drain(self, streams: _Streams, wait_s: float = EXIT_DRAIN_S) -> None:
        """Take what is in the pipes, waiting at most `wait_s` for more."""
        until = time.monotonic() + wait_s
        while self.fds:
            left = max(0.0, until - time.monotonic())
            readable, _, _ = select.select(list(self.fds), [], [], left)
            if not readable:
                return
            for fd in readable:
                self._read(fd, streams)

    def _how_it_ended(self, streams: _Streams) -> Ending:
        _, wait_status = os.waitpid(self.pid, 0)  # pidfd said it exited: this cannot block
        self.pid = 0
        if os.WIFSIGNALED(wait_status):
            oom = self.cgroup is not None and self.cgroup.oom_killed()
            return _ended_by_signal(os.WTERMSIG(wait_status), streams.text("stderr"), oom)
        return Ending(RunStatus.killed, "Crashed", "the run ended without a result")

    def _kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Kill pid 1 (and with it its namespace), wait for it, remove its cgroup and files."""
        self._kill()
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        if self.cgroup is not None:
            for _ in range(50):  # the run's last processes may take a moment to be freed
                self.cgroup.remove()
                if not self.cgroup.path.exists():
                    break
                time.sleep(0.02)
        if not self.secure:
            shutil.rmtree(self.workdir, ignore_errors=True)


def supervise(sock: socket.socket, order: SpawnSpare, secure: bool, template_pid: int) -> None:
    """Entry point in the freshly forked supervisor; never returns."""
    code = 0
    supervisor = None
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        set_parent_death_signal()
        if os.getppid() != template_pid:  # the template died before the line above
            return
        supervisor = Supervisor(sock, order, secure)
        supervisor.start_run()
        supervisor.relay()
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        try:
            if supervisor is not None:
                supervisor.reap()
        finally:
            os._exit(code)
