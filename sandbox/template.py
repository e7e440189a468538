"""A template: imports one framework once, then forks a spare per "spawn" order.

    pool (server) ══ctrl socket══> bwrap ──> template (this process, one loop)
                  ══socket per spare══════════ ├── run (spare: pid 1 of its own namespaces)
                                               └── run ...

The pool keeps one template per framework: a PyTorch spare forked from a
process without TensorFlow copies a third of the mappings, and its fork and
exit cost a third as much (≈ 1 ms each instead of ≈ 3).

The template never runs a framework op: TF's runtime threads or torch's
OpenMP pool started here would hang every forked child. It only imports,
has oneDNN generate TF's matmul kernels (one thread, no runtime: onednn.py),
freezes and folds its heap (cheaper forks, cheaper copy-on-write), then
answers each "spawn" with the new spare's socket (passed as an fd) and
supervises the spare and its run (`supervisor.py`). It reaps every run
itself, so their CPU time adds up in its own (bench reads it).
"""

from __future__ import annotations

import argparse
import gc
import os
import selectors
import signal
import socket
import sys
import time
import traceback
import types
from typing import TYPE_CHECKING

from sandbox.protocol import (
    FRAMEWORKS,
    ProtocolError,
    SpareSpawned,
    SpawnSpare,
    TemplateHello,
    parse_frame,
)

if TYPE_CHECKING:  # imported once the template's namespaces are its own (main)
    from sandbox.supervisor import Supervision, Timer


def import_framework(framework: str) -> str:
    """Import `framework` and what every spare needs; returns what `onednn` did."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy  # noqa: F401

    kernels = ""
    if framework == "tensorflow":
        import tensorflow  # noqa: F401

        from sandbox import onednn

        kernels = onednn.precompile()
    else:
        import torch  # noqa: F401

        # tensorboard's documented switch (its `no_tensorflow` build) for its
        # stand-in file layer: a PyTorch run's SummaryWriter then works as on
        # a machine without TensorFlow, instead of importing all of it (≈ 2.5 s).
        notf = "tensorboard.compat.notf"
        sys.modules.setdefault(notf, types.ModuleType(notf))

    import sandbox.execute
    import sandbox.isolation
    import sandbox.runner
    import sandbox.supervisor

    sandbox.runner.FACTS.update(sandbox.runner.host_facts())
    # Not left to each spare: importing this module (ctypes, libc) and
    # compiling the seccomp filter cost a spare ~15 ms of CPU.
    sandbox.isolation.prepare()
    return kernels


class Refold:
    """Folds the heap into huge pages again once spares stop being asked for a while.

    The template's own writes after a fork (refcounts, its loop's objects)
    split the huge pages they land in, a few per hundred spares; left alone,
    a long day would bring back the small pages and the costly forks.
    Folding again is cheap where pages are still huge.
    """

    EVERY = 64  # spares between refolds
    QUIET_S = 2.0  # no spawn for this long: the pool is not in a burst

    def __init__(self, loop: Supervision) -> None:
        self.loop, self.count, self.last = loop, 0, 0.0
        self.timer: Timer | None = None

    def spawned(self) -> None:
        self.count += 1
        self.last = time.monotonic()
        if self.count >= self.EVERY and self.timer is None:
            self.timer = self.loop.later(self.QUIET_S, self._fold)

    def _fold(self) -> None:
        self.timer = None
        if time.monotonic() - self.last < self.QUIET_S:  # still busy: later
            self.timer = self.loop.later(self.QUIET_S, self._fold)
            return
        from sandbox.hugepages import collapse_heap

        collapse_heap()
        self.count = 0


def serve(ctrl: socket.socket, secure: bool, framework: str) -> None:
    from sandbox.supervisor import Supervision, supervise

    loop = Supervision(secure)
    loop.owned.add(ctrl.fileno())
    refold = Refold(loop)

    def on_order() -> None:
        try:
            data = ctrl.recv(65536)
        except OSError:
            data = b""
        if not data:
            raise SystemExit(0)  # the pool closed the control socket: shut down
        try:
            order = parse_frame(SpawnSpare, data)
        except ProtocolError:
            traceback.print_exc()
            return
        try:
            if order.framework != framework:
                raise ProtocolError(f"this template serves {framework}, not {order.framework}")
            pool_end, pid = supervise(loop, order)
        except Exception:  # no spare: the pool reads an end-of-stream and makes another
            traceback.print_exc()
            pool_end, gone = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            gone.close()
            pid = 0
        reply = SpareSpawned(id=order.id, slot=order.slot, framework=order.framework, pid=pid)
        try:
            socket.send_fds(ctrl, [reply.model_dump_json().encode()], [pool_end.fileno()])
        except OSError:
            raise SystemExit(0) from None  # the pool is gone: so are we
        finally:
            pool_end.close()
        refold.spawned()

    loop.watch(ctrl.fileno(), selectors.EVENT_READ, on_order)
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctrl-fd", type=int, required=True)
    parser.add_argument("--framework", choices=FRAMEWORKS, required=True)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    ctrl = socket.socket(fileno=args.ctrl_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when we stop
    try:
        if not args.insecure:
            from sandbox.isolation import is_real_root, own_namespaces

            if not is_real_root():
                own_namespaces()  # before the imports start any thread
        kernels = import_framework(args.framework)
        gc.freeze()
        from sandbox.hugepages import collapse_heap

        collapse_heap()  # after the imports, so what they allocated is folded too
        ctrl.send(TemplateHello(pid=os.getpid(), kernels=kernels).model_dump_json().encode())
        serve(ctrl, secure=not args.insecure, framework=args.framework)
    except Exception:
        traceback.print_exc()
        sys.exit(70)


if __name__ == "__main__":
    main()
