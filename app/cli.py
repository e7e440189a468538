"""The `sidebyside` command: serve the app, run a remote worker, check lesson packs, port a
Keras model."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

if TYPE_CHECKING:  # the app is imported only by the commands that serve it
    from app.state import AppState


class _Server(uvicorn.Server):
    """Ends the live classes' event streams as soon as shutdown begins.

    uvicorn waits for open responses before it runs the app's shutdown, and
    an event stream never ends by itself: without this a restart would wait
    out the whole graceful timeout whenever a dashboard is open. The pages
    reconnect to the next server on their own.
    """

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig in (signal.SIGINT, signal.SIGTERM):
            # a signal handler may not touch the loop's queues directly
            asyncio.get_running_loop().call_soon_threadsafe(self.state.classes.bus.close)


class _AcceptErrorsThrottled(logging.Filter):
    """One "socket.accept() out of system resource" report per interval, with a count.

    At its descriptor limit the server can't accept, and asyncio logs each failed
    accept with its traceback: a flood of connections wrote tens of thousands of
    lines in seconds, enough to fill a disk under a determined client.
    """

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s, self.last, self.suppressed = every_s, float("-inf"), 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg}\n({self.suppressed} more since the last report)"
        self.last, self.suppressed = now, 0
        return True


def _serve(args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.settings import Settings

    overrides: dict[str, object] = {"host": args.host, "port": args.port,
                                    "packs_dir": args.packs, "reload_packs": args.reload or None}
    if args.insecure_no_sandbox:
        overrides["insecure_no_sandbox"] = True
    try:
        settings = Settings.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        return _bad_settings(exc)
    from sandbox.isolation import SandboxUnavailable, check_sandbox

    # With a broker every run goes to the workers, which check their own
    # sandbox: the web server isolates nothing, so it needs (and, in a
    # container, is given) none of the sandbox's rights.
    if not settings.insecure_no_sandbox and not settings.broker_url:
        try:
            check_sandbox()
        except SandboxUnavailable as exc:
            print(f"sidebyside: cannot isolate runs: {exc}", file=sys.stderr)
            print("Fix that, or start with --insecure-no-sandbox on a trusted machine.",
                  file=sys.stderr)
            return 2
    app = create_app(settings)
    logging.getLogger("asyncio").addFilter(_AcceptErrorsThrottled())
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=15)
    _Server(config, app.state.sidebyside).run()
    return 0


def _worker(args: argparse.Namespace) -> int:
    import socket

    from app.settings import Settings
    from sandbox.isolation import SandboxUnavailable, check_sandbox
    from sandbox.pool import Pool
    from sandbox.protocol import Device
    from sandbox.remote.device import describe, has_gpu
    from sandbox.remote.worker import WorkerHost, serve

    try:
        settings = Settings()
    except ValidationError as exc:
        return _bad_settings(exc)
    if not settings.broker_url:
        print("sidebyside: a worker needs SIDEBYSIDE_BROKER_URL (redis://host:6379/0)",
              file=sys.stderr)
        return 2
    insecure = args.insecure_no_sandbox or settings.insecure_no_sandbox
    if not insecure:
        try:
            check_sandbox()
        except SandboxUnavailable as exc:
            print(f"sidebyside: cannot isolate runs: {exc}", file=sys.stderr)
            return 2
    device: Device = args.device or ("gpu" if has_gpu() else "cpu")
    name = args.name or f"{device}@{socket.gethostname()}"
    pool = Pool(settings.limits(), size=settings.pool_size, insecure=insecure,
                queue_size=settings.queue_size, spares_memory_mb=settings.spares_memory_mb)
    serve(WorkerHost(pool, name, describe(device), settings.broker_url,
                     settings.worker_signer()))
    return 0


def _bad_settings(exc: ValidationError) -> int:
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        print(f"sidebyside: {where + ': ' if where else ''}{error['msg']}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> int:
    from app.check import run_check_command

    return run_check_command(args.path, as_json=args.json)


def _port(args: argparse.Namespace) -> int:
    from app.port_command import run_port_command

    try:
        return run_port_command(Path(args.model), Path(args.out) if args.out else None,
                                args.layout, args.atol, args.rtol, args.onnx,
                                Path(args.inputs) if args.inputs else None)
    except ValidationError as exc:
        return _bad_settings(exc)


def _new(args: argparse.Namespace) -> int:
    from app.packs.scaffold import ScaffoldError, write_pack

    try:
        files = write_pack(Path(args.path))
    except ScaffoldError as exc:
        print(f"sidebyside: {exc}", file=sys.stderr)
        return 2
    for file in files:
        print(f"wrote {file}")
    print(f"next: sidebyside check {args.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidebyside")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the web server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--packs", default=None, help="folder of lesson packs to serve")
    serve.add_argument("--reload", action="store_true",
                       help="live preview: re-read the packs and refresh pages on every change")
    serve.add_argument("--insecure-no-sandbox", action="store_true",
                       help="run snippets without isolation (flagged on every page)")
    serve.set_defaults(func=_serve)

    worker = commands.add_parser(
        "worker", help="run snippets for web servers: a local pool fed from the Redis queue")
    worker.add_argument("--device", choices=("cpu", "gpu"), default=None,
                        help="the queue to take runs from (default: gpu when one is present)")
    worker.add_argument("--name", default=None, help="node name (default: DEVICE@HOSTNAME)")
    worker.add_argument("--insecure-no-sandbox", action="store_true",
                        help="run snippets without isolation (development only)")
    worker.set_defaults(func=_worker)

    check = commands.add_parser("check", help="validate a lesson pack and run its snippets")
    check.add_argument("path")
    check.add_argument("--json", action="store_true", help="machine-readable report")
    check.set_defaults(func=_check)

    port = commands.add_parser(
        "port", help="port a Keras model to PyTorch source and weights, proved layer by layer")
    port.add_argument("model", help="a .keras or .h5 file, or a .py snippet that builds one")
    port.add_argument("-o", "--out", default=None,
                      help="an empty or new folder for the files (default: ./MODEL-torch)")
    port.add_argument("--layout", choices=("nhwc", "nchw"), default="nhwc",
                      help="image inputs as Keras takes them (nhwc) or channels first")
    port.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance")
    port.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance")
    port.add_argument("--onnx", action="store_true",
                      help="also compare both models exported to ONNX, in onnxruntime")
    port.add_argument("--inputs", default=None, metavar="FILE",
                      help="your own inputs to prove it on too, in Keras's layout: a .npy "
                           "(one input) or a .npz (arrays named after the inputs, or arr_0, "
                           "arr_1...)")
    port.set_defaults(func=_port)

    new = commands.add_parser("new", help="write a pack skeleton that passes check")
    new.add_argument("path", help="a new or empty folder")
    new.set_defaults(func=_new)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
