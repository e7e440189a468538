"""A template: imports one framework once, then forks a spare per "spawn" order.

    pool (server) ══ctrl socket══> bwrap ──> template (this process, one loop)
                  ══socket per spare══════════ ├── run (spare: pid 1 of its own namespaces)
                                               └── run ...

The pool keeps one template per framework: a PyTorch spare forked from a
process without TensorFlow copies a third of the mappings, and its fork and
exit cost a third as much (≈ 1 ms each instead of ≈ 3).

The template never runs a framework op: TF's runtime threads or torch's
OpenMP pool started here would hang every forked child. It only imports
(`frameworks/`: TensorFlow's also has oneDNN generate its matmul kernels,
one thread, no runtime), freezes and folds its heap (cheaper forks, cheaper
copy-on-write), then answers each `SpawnSpare` with the new spare's socket
(passed as an fd) and supervises the spare and its run (`supervisor.py`).
It reaps every run itself, so their CPU time adds up in its own (bench
reads it).
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
from typing import TYPE_CHECKING

from sandbox import hugepages
from sandbox.loop import Loop, Timer
from sandbox.messages import (
    PORT_SPARE_FILES,
    KernelStatus,
    SpareSpawned,
    SpawnSpare,
    TemplateHello,
)
from sandbox.namespaces import is_real_root, own_namespaces
from sandbox.protocol import FRAMEWORKS, Framework
from sandbox.wire import ProtocolError, parse_frame

if TYPE_CHECKING:
    from sandbox.supervisor import Supervision

# What the run side needs is imported in `import_framework`, not here: it
# loads numpy, whose import may start threads, and a rootless template must
# still be single-threaded when it moves into its own namespaces (`main`).


def import_framework(framework: Framework, precompile_kernels: bool = True) -> KernelStatus | None:
    """Import `framework` and what every spare needs; what was done of its kernels, if any."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy  # noqa: F401

    import sandbox.supervisor  # noqa: F401  (every spare's code, loaded once for all)
    from sandbox import frameworks, runner, seccomp

    kernels = frameworks.of(framework).in_template(precompile_kernels)
    runner.FACTS = runner.host_facts()
    runner.rehearse()
    # Not left to each spare: compiling the seccomp filter costs a spare ~5 ms.
    seccomp.prepare()
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

    def __init__(self, loop: Loop) -> None:
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
        hugepages.collapse_heap()
        self.count = 0


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def serve(ctrl: socket.socket, loop: Supervision, framework: Framework) -> None:
    from sandbox.supervisor import supervise

    loop.owned.add(ctrl.fileno())
    refold = Refold(loop)

    def on_order() -> None:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 65536, PORT_SPARE_FILES)
        except OSError:
            data, fds = b"", []
        if not data:
            raise SystemExit(0)  # the pool closed the control socket: shut down
        try:
            order = parse_frame(SpawnSpare, data)
        except ProtocolError:
            traceback.print_exc()
            _close_all(fds)
            return
        try:
            if order.framework != framework:
                raise ProtocolError(f"this template serves {framework}, not {order.framework}")
            if order.port != (len(fds) == PORT_SPARE_FILES):
                raise ProtocolError("a port's spare comes with its three files, no other does")
            pool_end, pid = supervise(loop, order, tuple(fds))
        except Exception:  # no spare: the pool reads an end-of-stream and makes another
            traceback.print_exc()
            pool_end, gone = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            gone.close()
            pid = 0
        finally:
            _close_all(fds)  # the run has its own copies now; no later spare may inherit them
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
    parser.add_argument("--no-kernels", action="store_true",
                        help="TensorFlow: leave oneDNN's kernels to each spare (onednn.py)")
    args = parser.parse_args()
    ctrl = socket.socket(fileno=args.ctrl_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when we stop
    try:
        if not args.insecure and not is_real_root():
            own_namespaces()  # before the imports start any thread
        kernels = import_framework(args.framework, precompile_kernels=not args.no_kernels)
        gc.freeze()
        hugepages.collapse_heap()  # after the imports, so what they allocated is folded too
        ctrl.send(TemplateHello(pid=os.getpid(), kernels=kernels).model_dump_json().encode())
        from sandbox.supervisor import Supervision

        serve(ctrl, Supervision(secure=not args.insecure), args.framework)
    except Exception:
        traceback.print_exc()
        sys.exit(70)


if __name__ == "__main__":
    main()
