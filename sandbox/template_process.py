"""The pool's hold on one template process: start it, hear from it, stop it.

    pool ──Popen──> bwrap ──> template (template.py)
      │  ◄══ TemplateHello ══ control socket (SOCK_SEQPACKET)
      │  ══ SpawnSpare ═════►
      │  ◄══ SpareSpawned + the spare's socket (fd passing) ══
      └─ a closed control socket: the template is dead

A template's `generation` counts its starts: spares of an earlier one died
with it, however late the pool hears of it. Restarting, and what happens
to the spares and runs of a dead one, are the pool's to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable

from sandbox import launcher
from sandbox.gpu_binds import Gpu
from sandbox.messages import KernelStatus, SpareSpawned, SpawnSpare, TemplateHello
from sandbox.protocol import Framework
from sandbox.wire import ProtocolError, parse_frame

log = logging.getLogger("sidebyside.pool")
TEMPLATE_START_S = 180.0  # importing both frameworks on a cold disk can be slow

# the spare's socket (None: lost on the way), the reply, the template's generation
OnSpare = Callable[[socket.socket | None, SpareSpawned, int], None]


@dataclasses.dataclass
class TemplateProcess:
    """One framework's template process, its control socket and its restarts."""

    framework: Framework
    process: subprocess.Popen[bytes] | None = None
    ctrl: socket.socket | None = None
    generation: int = 0  # spares of an earlier generation died with their template
    restarting: bool = False
    kernels: KernelStatus | None = None  # what it said of oneDNN's kernels (onednn.py)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, *, insecure: bool, gpu: Gpu | None, cgroup_dirs: list[str],
                    kernels: bool, on_spare: OnSpare, on_dead: Callable[[], None]) -> None:
        """Start it and wait for its hello; raises (and leaves it stopped) when it fails."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = launcher.template_argv(theirs.fileno(), self.framework, insecure, kernels)
        fds = [theirs.fileno()]
        identity: tuple[int, ...] = ()
        if not insecure:
            identity = launcher.identity_fds()
            argv = launcher.bwrap_command(argv, *identity, cgroup_dirs=cgroup_dirs, gpu=gpu)
            fds += identity
        env = None if not insecure else {**launcher.RUN_ENV, "PYTHONPATH": str(
            launcher.SANDBOX_DIR.parent), "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
        self.process = subprocess.Popen(argv, pass_fds=fds, env=env, stdin=subprocess.DEVNULL,
                                        stdout=sys.stderr, stderr=sys.stderr)
        theirs.close()
        for fd in identity:
            os.close(fd)
        ours.setblocking(False)
        self.ctrl = ours
        self.generation += 1
        try:
            hello = await asyncio.wait_for(loop.sock_recv(ours, 65536), TEMPLATE_START_S)
            if not hello:
                raise RuntimeError("the sandbox template exited while starting (see the log)")
            self.kernels = parse_frame(TemplateHello, hello).kernels
        except BaseException:
            self.stop()
            raise
        loop.add_reader(ours.fileno(), self._on_ctrl_readable, ours, self.generation,
                        on_spare, on_dead)

    def send(self, order: SpawnSpare, fds: tuple[int, ...] = ()) -> bool:
        """Ask for a spare (`fds`: a port's files, passed along); False when it can't be told."""
        if self.ctrl is None:
            return False
        try:
            socket.send_fds(self.ctrl, [order.model_dump_json().encode()], list(fds))
        except OSError:
            return False
        return True

    def _on_ctrl_readable(self, ctrl: socket.socket, generation: int, on_spare: OnSpare,
                          on_dead: Callable[[], None]) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 65536, 1)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            asyncio.get_running_loop().remove_reader(ctrl.fileno())
            if generation == self.generation:
                on_dead()
            return
        sock = socket.socket(fileno=fds[0]) if fds else None
        try:
            spawned = parse_frame(SpareSpawned, data)
            if spawned.framework != self.framework:
                raise ProtocolError(f"a {spawned.framework} spare from the "
                                    f"{self.framework} template")
        except ProtocolError:
            log.error("the template sent a malformed message; restarting it")
            if sock is not None:
                sock.close()
            on_dead()
            return
        # Without its socket (MSG_CTRUNC: no descriptor left) the spare is lost, and the
        # pool must hear it all the same, to take back its slot.
        on_spare(sock, spawned, generation)

    def stop(self) -> None:
        """Kill it and reap it; its spares are stale from now on."""
        self.generation += 1
        if self.ctrl is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.ctrl.fileno())
            self.ctrl.close()
            self.ctrl = None
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
