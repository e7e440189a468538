"""Hostile snippets: each must end with a clear status within its limit and leave
the server serving the next run. Named for what they prove."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SERVER_SECRET, LiveServer


def run(api: httpx.Client, code: str, framework: str = "pytorch", **extra: object) -> dict:
    started = time.monotonic()
    response = api.post("/api/runs", json={"framework": framework, "code": code, **extra})
    assert response.status_code == 200, response.text
    result = response.json()
    result["elapsed_s"] = time.monotonic() - started
    return result


@pytest.fixture(autouse=True)
def still_serving_afterwards(api: httpx.Client) -> Iterator[None]:
    yield
    after = run(api, "x = 40 + 2\nprint(x)")
    assert after["status"] == "ok" and after["stdout"] == "42\n", after


def test_busy_loop_is_stopped_by_the_time_limit(api: httpx.Client) -> None:
    result = run(api, "while True:\n    pass\n", timeout_s=2)
    assert result["status"] == "timeout" and result["elapsed_s"] < 8


def test_sleep_is_stopped_by_the_wall_clock(api: httpx.Client) -> None:
    result = run(api, "import time\nprint('going to sleep')\ntime.sleep(600)\n", timeout_s=2)
    assert result["status"] == "timeout" and result["elapsed_s"] < 8
    assert result["stdout"] == "going to sleep\n"  # what it printed before the kill survives


def test_python_memory_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "blocks = []\nwhile True:\n    blocks.append(bytearray(256 * 1024 * 1024))\n")
    assert result["status"] == "memory", result


def test_torch_memory_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "import torch\nx = torch.ones(1024, 1024, 1024)\n")
    assert result["status"] == "memory", result


def test_tensorflow_memory_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "import tensorflow as tf\nx = tf.ones([1024, 1024, 1024])\n", "tensorflow")
    assert result["status"] in ("memory", "killed"), result
    assert result["status"] == "memory" or "memory" in (result["stderr"] + str(result["error"]))


def test_numpy_memory_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "import numpy as np\nx = np.ones((1024, 1024, 1024))\n")
    assert result["status"] == "memory", result


def test_fork_bomb_ends_that_run_only(api: httpx.Client) -> None:
    result = run(api, "import os\nwhile True:\n    os.fork()\n", timeout_s=5)
    assert result["status"] in ("error", "timeout"), result
    if result["status"] == "error":
        assert result["error"]["type"] == "BlockingIOError"


def test_thread_bomb_ends_that_run_only(api: httpx.Client) -> None:
    code = ("import threading, time\nwhile True:\n"
            "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    result = run(api, code, timeout_s=5)
    assert result["status"] == "error" and "thread" in result["error"]["message"], result


def test_amount_of_stdout_is_limited(api: httpx.Client) -> None:
    result = run(api, "while True:\n    print('x' * 1000)\n")
    assert result["status"] == "output_limit"
    assert len(result["stdout"]) < 256 * 1024 + 200 and "output cut" in result["stdout"]


def test_amount_of_stderr_is_limited(api: httpx.Client) -> None:
    result = run(api, "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n")
    assert result["status"] == "output_limit" and "output cut" in result["stderr"]


def test_network_connections_to_the_app_server_are_impossible(
        api: httpx.Client, live_server: LiveServer) -> None:
    port = live_server.settings.port
    code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'GET /api/health HTTP/1.0\\r\\n\\r\\n')\nprint(s.recv(100))\n")
    result = run(api, code)
    assert result["status"] == "error", result
    assert result["error"]["type"] in ("OSError", "ConnectionRefusedError", "TimeoutError")


def test_server_environment_is_invisible(api: httpx.Client) -> None:
    assert os.environ["SIDEBYSIDE_TEST_SECRET"] == SERVER_SECRET
    code = ("import os\nenv = dict(os.environ)\nprocs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "print(sorted(env))\nprint(procs)\ndef environ(p):\n    try:\n"
            "        return open(f'/proc/{p}/environ', 'rb').read()\n    except OSError:\n"
            "        return b''\nprint(any(b'sbs-secret' in environ(p) for p in procs))")
    result = run(api, code)
    assert result["status"] == "ok", result
    assert SERVER_SECRET not in result["stdout"] and "SIDEBYSIDE" not in result["stdout"]
    assert result["stdout"].splitlines()[1] == "['1']"  # the run sees no process but itself
    assert result["stdout"].splitlines()[2] == "False"


def test_data_dir_and_home_are_invisible(api: httpx.Client, data_dir: Path) -> None:
    code = (f"import os\nprint(os.path.exists({str(data_dir)!r}))\n"
            f"print(os.path.exists({str(Path.home() / '.bash_history')!r}))\n"
            f"print(os.path.exists('/etc/shadow'))\nprint(os.path.exists({os.getcwd()!r} + '/.git'))")
    result = run(api, code)
    assert result["stdout"] == "False\nFalse\nFalse\nFalse\n", result


def test_root_only_files_stay_unreadable(api: httpx.Client) -> None:
    secret = Path(sys.prefix) / "root-only-test-file"
    secret.write_text(SERVER_SECRET)
    secret.chmod(0o600)
    try:
        result = run(api, f"print(open({str(secret)!r}).read())")
    finally:
        secret.unlink()
    assert result["status"] == "error" and result["error"]["type"] == "PermissionError"
    assert SERVER_SECRET not in result["stdout"]


def test_writing_outside_scratch_fails(api: httpx.Client) -> None:
    code = (f"open('/tmp/mine.txt', 'w').write('ok')\nprint(open('/tmp/mine.txt').read())\n"
            f"open({sys.prefix + '/planted.py'!r}, 'w').write('x = 1')\n")
    result = run(api, code)
    assert result["stdout"] == "ok\n"
    assert result["status"] == "error" and result["error"]["type"] in ("OSError", "PermissionError")
    assert not Path(sys.prefix, "planted.py").exists()


def test_leftovers_are_not_seen_by_the_next_run(api: httpx.Client) -> None:
    first = run(api, "import os, subprocess\nopen('/tmp/left.txt', 'w').write('x')\n"
                     "open('/dev/shm/left', 'w').write('x')\n"
                     "subprocess.Popen(['sleep', '300'])\nprint('planted')")
    assert first["stdout"] == "planted\n", first
    second = run(api, "import os\nprint(os.listdir('/tmp'), os.path.exists('/dev/shm/left'))\n"
                      "print([p for p in os.listdir('/proc') if p.isdigit()])")
    assert "left.txt" not in second["stdout"] and "True" not in second["stdout"]
    assert second["stdout"].splitlines()[1] == "['1']"


def test_killing_the_parent_ends_only_that_run(api: httpx.Client) -> None:
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n"
    result = run(api, code)
    assert result["status"] in ("killed", "error"), result


def test_huge_file_is_cut_by_the_file_size_limit(api: httpx.Client) -> None:
    code = "with open('/tmp/big', 'wb') as f:\n    for _ in range(200):\n        f.write(b'0' * 1024 * 1024)\n"
    result = run(api, code)
    assert result["status"] == "error" and result["error"]["type"] == "OSError", result
    assert "too large" in result["error"]["message"].lower()


def test_ptrace_and_mounts_are_refused(api: httpx.Client) -> None:
    code = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno())\n")
    result = run(api, code)
    assert result["stdout"] == "-1 1\n-1 1\n", result  # EPERM both times


def test_shared_memory_bomb_is_contained(api: httpx.Client) -> None:
    # Shared anonymous memory escapes RLIMIT_DATA; the run's memory cgroup catches it.
    if os.getuid() != 0:
        pytest.skip("memory cgroups are made by a server running as root")
    health = api.get("/api/health").json()
    assert health["memory_cgroups"] in ("v1", "v2"), "a root server should make memory cgroups"
    code = ("import mmap\nm = mmap.mmap(-1, 3 * 1024 ** 3)\n"
            "for i in range(0, len(m), 4096):\n    m[i] = 1\n")
    result = run(api, code, timeout_s=30)
    assert result["status"] == "memory", result
