"""Shared fixtures: one real server (real uvicorn, real sandbox pool) per test session.

Starting a pool imports both frameworks (seconds), so the session shares
one; tests that need odd limits build their own small pool.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.main import create_app
from app.settings import ROOT, Settings

# The server's environment holds a secret a snippet must never see.
SERVER_SECRET = "sbs-secret-7f3c9a"
os.environ.setdefault("SIDEBYSIDE_TEST_SECRET", SERVER_SECRET)


ADMIN_TOKEN = "admin-" + SERVER_SECRET[-12:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{settings.host}:{settings.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/api/health", timeout=5).json()
                if health["pool"]["spares_ready"] > 0:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the test server did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data")
    (path / "server-only.txt").write_text(SERVER_SECRET)
    return path


@pytest.fixture(scope="session")
def live_server(data_dir: Path) -> Iterator[LiveServer]:
    settings = Settings(host="127.0.0.1", port=free_port(), data_dir=data_dir,
                        packs_dir=ROOT / "lessons", pool_size=2, run_timeout_s=10.0,
                        admin_token=ADMIN_TOKEN)
    server = LiveServer(settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=90) as client:
        yield client
