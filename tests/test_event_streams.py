"""Held event streams can't wedge the server: caps per address, per token and in all.

Over a real uvicorn (ASGITransport would buffer the endless responses) with
a stand-in pool; the streams are raw sockets, so a test can hold hundreds
and see exactly what the server answers and when it hangs up. The last
test runs the server in a process of its own with a low descriptor limit.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.main import create_app
from app.settings import ROOT, Settings
from sandbox.stats import PoolStats
from tests.conftest import free_port
from tests.test_classes_api import QuickPool

WAIT_S = 10.0


class StandInPool(QuickPool):
    """QuickPool, with the health a real pool reports."""

    def stats(self) -> PoolStats:
        return PoolStats(slots=2, busy=0, queued=0, runs_started=0, template_alive=True,
                         degraded=None, sandbox="stand-in", memory_cgroups=None,
                         memory_limit="none", cpu_limit="none", insecure=False, spares_ready=0,
                         spares_warming=0, reserve={},
                         reserve_memory_mb=0, tensorflow_kernels=None, pool_pss_mb=None,
                         template_restarts=0)


def serve_forever() -> None:
    """The server of the descriptor test, configured by SIDEBYSIDE_* variables."""
    settings = Settings()
    app = create_app(settings, executor=StandInPool())  # type: ignore[arg-type]
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="error")


class Server:
    """uvicorn in a thread; on exit the test's streams close first, as uvicorn waits for
    open responses before it stops."""

    def __init__(self, data_dir: Path, opened: list[Stream], **settings: Any) -> None:
        self.port, self.opened = free_port(), opened
        app = create_app(Settings(port=self.port, data_dir=data_dir, packs_dir=ROOT / "lessons",
                                  **settings), executor=StandInPool())  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        wait_until_healthy(self.port)
        return self

    def __exit__(self, *_: object) -> None:
        for stream in self.opened:
            stream.close()
        self.server.should_exit = True
        self.thread.join(30)


def wait_until_healthy(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


class Stream:
    """One request on its own socket: the status and head, then whatever follows."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        lines = [f"GET {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in
                                                        headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{path}: closed before an answer")
            self.data += chunk
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1").lower()
        self.status = int(self.head.split()[1])

    def read_until(self, text: bytes) -> bytes:
        while text not in self.data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.data += chunk
        return self.data

    def hung_up(self) -> bool:
        """True once the server closed its end (read to EOF)."""
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def opened() -> Iterator[list[Stream]]:
    streams: list[Stream] = []
    yield streams
    for stream in streams:
        stream.close()


def open_stream(port: int, opened: list[Stream], path: str, **headers: str) -> Stream:
    stream = Stream(port, path, headers)
    opened.append(stream)
    return stream


def new_class(port: int) -> tuple[str, str, list[str]]:
    """A class with three learners: its code, the instructor token, the learners' tokens."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        made = http.post("/api/classes", json={"pack": "example", "title": "T"}).json()
        learners = []
        for name in ("Ana", "Ben", "Cy"):
            http.cookies.clear()
            joined = http.post(f"/api/classes/{made['code']}/join", json={"name": name})
            learners.append(joined.json()["student_token"])
    return made["code"], made["instructor_token"], learners


def test_streams_over_the_caps_get_429_while_pages_and_health_answer(
        tmp_path: Path, opened: list[Stream]) -> None:
    with Server(tmp_path, opened, sse_streams_per_address=4, sse_streams_per_token=2) as server:
        port = server.port
        code, teacher, (ana, ben, _) = new_class(port)
        events = f"/api/classes/{code}/events"
        dashboard = f"/classes/{code}/live"
        instructor = {"Authorization": f"Bearer {teacher}"}
        held = [open_stream(port, opened, events, **instructor),
                open_stream(port, opened, dashboard, Cookie=f"sbs_teach_{code}={teacher}")]
        assert [s.status for s in held] == [200, 200]
        third = open_stream(port, opened, events, **instructor)
        assert third.status == 429 and "retry-after: 10" in third.head
        assert "connection: close" in third.head and third.hung_up()
        assert b"Too many live streams for this sign-in (2)" in third.data

        banner = f"/classes/{code}/stream"
        held += [open_stream(port, opened, banner, Cookie=f"sbs_class={ana}") for _ in "12"]
        assert [s.status for s in held] == [200, 200, 200, 200]
        fifth = open_stream(port, opened, banner, Cookie=f"sbs_class={ben}")
        assert fifth.status == 429 and fifth.hung_up()
        assert b"Too many live streams from this address (4)" in fifth.data

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as http:
            assert http.get("/api/health").status_code == 200
            assert http.get("/").status_code == 200
            assert http.get(f"/classes/{code}/dashboard",
                            cookies={f"sbs_teach_{code}": teacher}).status_code == 200

        held[0].close()  # the client goes away: its slot comes back
        deadline = time.monotonic() + WAIT_S
        while (again := open_stream(port, opened, banner, Cookie=f"sbs_class={ben}")).status \
                != 200:
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            time.sleep(0.05)
        assert b"retry: 2000" in again.read_until(b"retry: 2000")


def test_a_removed_learner_hears_it_on_their_stream_and_the_dashboards_too(
        tmp_path: Path, opened: list[Stream]) -> None:
    with Server(tmp_path, opened) as server:
        port = server.port
        code, teacher, (ana, ben, _) = new_class(port)
        instructor = {"Authorization": f"Bearer {teacher}"}
        watching = open_stream(port, opened, f"/api/classes/{code}/events", **instructor)
        anas = open_stream(port, opened, f"/classes/{code}/stream", Cookie=f"sbs_class={ana}")
        bens = open_stream(port, opened, f"/classes/{code}/stream", Cookie=f"sbs_class={ben}")
        assert b'id="class-banner"' in anas.read_until(b'id="class-banner"')
        bens.read_until(b'id="class-banner"')
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=instructor) as http:
            roster = http.get(f"/api/classes/{code}/roster").json()
            gone = http.delete(f"/api/classes/{code}/learners/{roster[0]['id']}")
            assert gone.status_code == 204
        said = anas.read_until(b"0\r\n\r\n")  # her stream ends after the note
        assert b"took you out of the class" in said and said.endswith(b"0\r\n\r\n")
        assert b"event: removed" in watching.read_until(b"event: removed")
        assert b'"name":"Ana"' in watching.data.split(b"event: removed")[1]
        assert b"took you out" not in bens.data


LOW_DESCRIPTORS = 256  # the server may hold a quarter of them as streams: 64


def low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_DESCRIPTORS, LOW_DESCRIPTORS))


def test_held_streams_never_stop_a_low_descriptor_server_answering(
        tmp_path: Path, opened: list[Stream]) -> None:
    port = free_port()
    env = {**os.environ, "SIDEBYSIDE_PORT": str(port), "SIDEBYSIDE_DATA_DIR": str(tmp_path),
           "SIDEBYSIDE_PACKS_DIR": str(ROOT / "lessons"),
           # only the total binds here: one client holds everything it is allowed
           "SIDEBYSIDE_SSE_STREAMS_PER_ADDRESS": "100000",
           "SIDEBYSIDE_SSE_STREAMS_PER_TOKEN": "100000"}
    server = subprocess.Popen(
        [sys.executable, "-c", "from tests.test_event_streams import serve_forever; "
                               "serve_forever()"],
        cwd=ROOT, env=env, preexec_fn=low_descriptor_limit)
    try:
        wait_until_healthy(port)
        code, teacher, _ = new_class(port)
        answers: dict[int, int] = {}
        for _ in range(LOW_DESCRIPTORS + 100):  # more streams than the server has descriptors
            stream = open_stream(port, opened, f"/api/classes/{code}/events",
                                 Authorization=f"Bearer {teacher}")
            answers[stream.status] = answers.get(stream.status, 0) + 1
            if stream.status != 200:
                stream.close()  # a refused client may go; the server hung up already
        assert answers == {200: LOW_DESCRIPTORS // 4, 429: 100 + LOW_DESCRIPTORS * 3 // 4}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as http:
            for _ in range(20):
                assert http.get("/api/health").status_code == 200
            assert http.get("/").status_code == 200
    finally:
        for stream in opened:
            stream.close()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
