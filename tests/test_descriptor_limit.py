"""A server at its descriptor limit loses no slot and never wedges: a real `sidebyside serve`
under a low RLIMIT_NOFILE, flooded with idle connections while its reserve refills, still
runs both frameworks once the flood is gone."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.settings import ROOT
from tests.conftest import free_port

NOFILE = 256
FLOOD = 600


def test_a_flood_at_the_descriptor_limit_leaves_the_pool_serving(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SIDEBYSIDE_PORT": str(port), "SIDEBYSIDE_DATA_DIR": str(tmp_path),
           "SIDEBYSIDE_POOL_SIZE": "2", "SIDEBYSIDE_SPARES_MEMORY_MB": "400"}
    log = tmp_path / "server.log"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 256), hard))
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                                  stdout=out, stderr=out, preexec_fn=low_limit)
    held: list[socket.socket] = []
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            deadline = time.monotonic() + 240
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/api/health").json()["pool"]["spares_ready"] > 2:
                        break
                assert time.monotonic() < deadline, "the server never became ready"
                time.sleep(0.3)
            for framework in ("pytorch", "tensorflow", "pytorch", "tensorflow"):  # draw down
                http.post("/api/runs", json={"framework": framework, "code": "x = 1"})
            # every descriptor the server has left goes to idle connections, while it refills
            for _ in range(FLOOD):
                with contextlib.suppress(OSError):
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            time.sleep(4)
            for sock in held:
                sock.close()
            held.clear()
            time.sleep(3)
            for framework in ("pytorch", "tensorflow") * 6:
                answer = http.post("/api/runs", json={"framework": framework,
                                                      "code": "print(6 * 7)"})
                assert answer.status_code == 200, answer.text
                result = answer.json()
                assert result["status"] == "ok" and result["stdout"] == "42\n", result
            health = http.get("/api/health").json()
            assert health["status"] == "ok", health
        # the failed accepts are reported once per 10 s, not once each (38,000 lines before)
        reports = log.read_text().count("socket.accept() out of system resource")
        assert 1 <= reports <= 3, reports
    finally:
        for sock in held:
            sock.close()
        server.terminate()
        server.wait(timeout=30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
