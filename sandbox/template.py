"""The template: imports both frameworks once, then forks a supervisor per spare.

    pool (server) ══ctrl socket══> bwrap ──> template (this process)
                                               ├── supervisor ──> run (spare: pid 1 of its own
                                               │                   namespaces)
                                               └── supervisor ──> run ...

The template never runs a framework op: TF's runtime threads or torch's
OpenMP pool started here would hang every forked child. It only imports,
freezes the heap (cheaper copy-on-write in children) and waits for "spawn"
messages, answering each with the new spare's socket (passed as an fd).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import traceback

from sandbox.protocol import ProtocolError, SpareSpawned, SpawnSpare, TemplateHello, parse_frame


def import_frameworks() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy  # noqa: F401
    import tensorflow  # noqa: F401
    import torch  # noqa: F401

    import sandbox.execute
    import sandbox.isolation
    import sandbox.supervisor

    # Not left to each spare: importing this module (ctypes, libc) and
    # compiling the seccomp filter cost a spare ~15 ms of CPU.
    sandbox.isolation.prepare()


def serve(ctrl: socket.socket, secure: bool) -> None:
    from sandbox.supervisor import supervise

    me = os.getpid()
    while True:
        data = ctrl.recv(65536)
        if not data:
            return  # the pool closed the control socket: shut down
        try:
            order = parse_frame(SpawnSpare, data)
        except ProtocolError:
            traceback.print_exc()
            continue
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ctrl.close()
            ours.close()
            supervise(theirs, order, secure, me)
        theirs.close()
        reply = SpareSpawned(id=order.id, slot=order.slot, framework=order.framework, pid=pid)
        socket.send_fds(ctrl, [reply.model_dump_json().encode()], [ours.fileno()])
        ours.close()


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctrl-fd", type=int, required=True)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    ctrl = socket.socket(fileno=args.ctrl_fd)
    # Supervisors are reaped here rather than by the kernel (SIG_IGN), so that
    # their CPU time, and their runs', adds up in this process's (bench reads it).
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when we stop
    try:
        import_frameworks()
        gc.freeze()
        from sandbox.hugepages import collapse_heap

        collapse_heap()  # after the imports, so what they allocated is folded too
        ctrl.send(TemplateHello(pid=os.getpid()).model_dump_json().encode())
        serve(ctrl, secure=not args.insecure)
    except Exception:
        traceback.print_exc()
        sys.exit(70)


if __name__ == "__main__":
    main()
