"""The supervisor: one per run, between the pool and the run it watches.

    template ──fork──> supervisor ──unshare(pid, mount, net, ipc); fork──> run (pid 1)
                          │  socket to the pool                 │ stdout, stderr, result pipes
                          └──────────── relays, caps, times ────┘

It holds no user code. It forwards the request, keeps at most
`output_bytes` of each stream, enforces the wall-clock limit, and turns
however the run ended into one result frame for the pool. Killing the run
(pid 1 of its namespace) takes every process the snippet started with it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import tempfile
import time
import traceback
from typing import Any

from sandbox import runner, wire
from sandbox.cgroups import RunCgroup
from sandbox.limits import Limits

CGROUP_HEADROOM_MB = 512
CUT_MARKER = "\n[… output cut: more than {kib} KiB on this stream]\n"


class _Streams:
    def __init__(self, limits: Limits) -> None:
        self.limit = limits.output_bytes
        self.result_limit = limits.result_bytes
        self.data = {"stdout": bytearray(), "stderr": bytearray(), "result": bytearray()}
        self.over: str | None = None

    def take(self, name: str, chunk: bytes) -> None:
        buf = self.data[name]
        limit = self.result_limit if name == "result" else self.limit
        room = limit - len(buf)
        buf += chunk[:max(room, 0)]
        if len(chunk) > room:
            self.over = name

    def text(self, name: str) -> str:
        text = self.data[name].decode("utf-8", "backslashreplace")
        if self.over == name:
            text += CUT_MARKER.format(kib=self.limit // 1024)
        return text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _ended_by_signal(sig: int, stderr: str, oom_killed: bool) -> tuple[str, str, str]:
    if sig == signal.SIGXCPU:
        return "timeout", "CPUTimeLimit", "the run used up its CPU time"
    if oom_killed or "bad_alloc" in stderr or "Cannot allocate memory" in stderr:
        return "memory", "MemoryLimit", "the run was stopped for using too much memory"
    return "killed", "Crashed", f"the run ended with {_signal_name(sig)}"


class Supervisor:
    def __init__(self, sock: socket.socket, slot: int, limits: Limits, secure: bool,
                 cgroup: dict[str, Any] | None = None) -> None:
        self.sock, self.slot, self.limits, self.secure = sock, slot, limits, secure
        self.cgroup: RunCgroup | None = None
        if cgroup is not None:
            # Headroom over RLIMIT_DATA: ordinary bombs still end as a clean
            # MemoryError; the cgroup catches what rlimits can't see.
            self.cgroup = RunCgroup(cgroup["base"], cgroup["version"],
                                    limits.memory_mb + CGROUP_HEADROOM_MB)

    def start_run(self) -> None:
        workdir = "/tmp" if self.secure else tempfile.mkdtemp(prefix="sbs-run-")
        self.workdir = workdir
        if self.secure:
            from sandbox.isolation import enter_run_namespaces

            enter_run_namespaces()
        pipes = {name: os.pipe() for name in ("stdout", "stderr", "result", "request")}
        self.pid = os.fork()
        if self.pid == 0:
            self._become_run(pipes)
        self.fds = {}
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
            self.sock.close()
            os.dup2(pipes["stdout"][1], 1)
            os.dup2(pipes["stderr"][1], 2)
            for name, (r, w) in pipes.items():
                os.close(w if name == "request" else r)
            os.chdir(self.workdir)
            runner.serve_one(pipes["request"][0], pipes["result"][1], self.limits,
                             self.slot, self.secure, self.cgroup)
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)

    def relay(self) -> None:
        """Pass the ready frame on, then the request in, then watch the run."""
        streams = _Streams(self.limits)
        ready = self._pump(streams, until_ready=True, deadline=time.monotonic() + 120)
        if ready is None:  # it failed while warming up, or the pool went away
            self._kill()
            return
        self.sock.sendall(wire.encode(ready))
        message = wire.read_frame(self.sock.fileno())
        if message is None:  # the pool went away or gave the spare up
            self._kill()
            return
        self.wall_s = float(message.get("wall_s", self.limits.wall_s))
        wire.write_frame(self.request_fd, message)
        os.close(self.request_fd)
        streams = _Streams(self.limits)  # warm-up chatter is not the snippet's output
        self._pump(streams, until_ready=False, deadline=time.monotonic() + self.wall_s)

    def _pump(self, streams: _Streams, until_ready: bool, deadline: float) -> dict | None:
        watched = dict(self.fds)
        sock_fd = self.sock.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                if until_ready:
                    return None
                status = "timeout", "TimeLimit", f"the run took longer than {self.wall_s:g} s"
                self._finish(streams, *status)
                return None
            readable, _, _ = select.select([*watched, sock_fd], [], [], remaining)
            if sock_fd in readable and not self.sock.recv(4096):
                self._kill()  # the pool hung up or gave the spare up: stop the run
                return None
            for fd in readable:
                if fd == sock_fd:
                    continue
                chunk = os.read(fd, 65536)
                name = watched[fd]
                if not chunk:
                    del watched[fd]
                    continue
                streams.take(name, chunk)
                if name == "result" and streams.over != "result":
                    frame = self._complete_frame(streams.data["result"])
                    if frame is not None and until_ready:
                        return frame
                    if frame is not None:  # done: don't wait for a heavy process to exit
                        self._drain(watched, streams)
                        self._finish(streams, None, "", "")
                        return None
                if streams.over and not until_ready:
                    self._kill()
                    what = ("output_limit", "OutputLimit", f"the run printed more than "
                            f"{self.limits.output_bytes // 1024} KiB to {streams.over}")
                    if streams.over == "result":
                        what = ("error", "ResultTooLarge", "the run's values were too large")
                    self._finish(streams, *what)
                    return None
            if "result" not in watched.values() and not until_ready:
                self._finish(streams, None, "", "")
                return None
            if not watched and until_ready:
                return None

    @staticmethod
    def _drain(watched: dict[int, str], streams: _Streams) -> None:
        """Take what the run printed before its result; it is already in the pipes."""
        while watched:
            readable, _, _ = select.select(list(watched), [], [], 0)
            if not readable:
                return
            for fd in readable:
                chunk = os.read(fd, 65536)
                if chunk:
                    streams.take(watched[fd], chunk)
                else:
                    del watched[fd]

    @staticmethod
    def _complete_frame(buf: bytearray) -> dict | None:
        if len(buf) < 4:
            return None
        size = wire.HEADER.unpack(buf[:4])[0]
        if len(buf) < 4 + size:
            return None
        import json

        return json.loads(bytes(buf[4:4 + size]))  # type: ignore[no-any-return]

    def remove_cgroup(self) -> None:
        if self.cgroup is None:
            return
        for _ in range(50):  # the run's last processes may take a moment to be freed
            self.cgroup.remove()
            if not self.cgroup.path.exists():
                return
            time.sleep(0.02)

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def _finish(self, streams: _Streams, status: str | None, type_: str, message: str) -> None:
        frame = self._complete_frame(streams.data["result"]) if status is None else None
        if frame is None or frame.get("type") != "result":
            _, wait_status = os.waitpid(self.pid, 0)
        stderr = streams.text("stderr")
        result: dict[str, Any] = {}
        if frame is not None and frame.get("type") == "result":
            result = frame["result"]
        elif status is None:  # the run ended by itself, without a result
            if os.WIFSIGNALED(wait_status):
                oom = self.cgroup is not None and self.cgroup.oom_killed()
                status, type_, message = _ended_by_signal(os.WTERMSIG(wait_status), stderr, oom)
            else:
                status, type_, message = "killed", "Crashed", "the run ended without a result"
        if status is not None:
            result = {"status": status, "error": {"type": type_, "message": message}}
        result["stdout"] = streams.text("stdout")
        result["stderr"] = stderr
        self.sock.sendall(wire.encode({"type": "result", "result": result}))
        self._kill()  # whatever the snippet left running goes with pid 1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.remove_cgroup()
        if not self.secure:
            shutil.rmtree(self.workdir, ignore_errors=True)


def supervise(sock: socket.socket, slot: int, limits: Limits, secure: bool,
              cgroup: dict[str, Any] | None = None) -> None:
    """Entry point in the freshly forked supervisor; never returns."""
    code = 0
    supervisor = None
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        supervisor = Supervisor(sock, slot, limits, secure, cgroup)
        supervisor.start_run()
        supervisor.relay()
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        if supervisor is not None:
            supervisor.remove_cgroup()
        os._exit(code)
