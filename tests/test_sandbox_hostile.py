"""Hostile snippets: each must end with a clear status within its limit and leave
the server serving the next run. Named for what they prove."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import ROOT
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


def test_a_run_cannot_raise_its_own_cpu_limit(api: httpx.Client) -> None:
    code = """import resource
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))  # as high as it may go: one second more
try:
    resource.setrlimit(resource.RLIMIT_CPU, (hard + 100, hard + 100))
    raised = True
except (ValueError, OSError):
    raised = False
print(soft, hard, raised)
"""
    result = run(api, code, timeout_s=2)
    assert result["status"] == "ok", result
    soft, hard, raised = result["stdout"].split()
    # the server's run_cpu_s (20 here) plus what the spare spent warming up, and no more
    assert int(hard) == int(soft) + 1 and int(hard) <= 20 + 5 and raised == "False", result


def test_nothing_written_to_dev_reaches_the_next_run(api: httpx.Client) -> None:
    plant = """import os
refused = []
for attempt in (lambda: open("/dev/planted", "w").write("x" * 4096),
                lambda: os.symlink("/tmp/mine", "/dev/mine"),
                lambda: (os.remove("/dev/stdout"), os.symlink("/tmp/out", "/dev/stdout"))):
    try:
        attempt()
        refused.append(False)
    except OSError:
        refused.append(True)
print(refused)
"""
    for framework in ("pytorch", "tensorflow"):
        planted = run(api, plant, framework=framework)
        assert planted["status"] == "ok" and planted["stdout"] == "[True, True, True]\n", planted
        after = run(api, "import os\nprint(sorted(os.listdir('/dev')), os.readlink('/dev/stdout'))",
                    framework=framework)
        assert "planted" not in after["stdout"] and "mine" not in after["stdout"], after
        assert after["stdout"].strip().endswith("/proc/self/fd/1"), after


def test_a_run_has_no_terminal_and_cannot_reach_another_runs(api: httpx.Client) -> None:
    code = """import os
try:
    os.openpty()
    opened = True
except OSError:
    opened = False
print(opened, os.listdir("/dev/pts"))
"""
    result = run(api, code)
    assert result["status"] == "ok" and result["stdout"] == "False []\n", result


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
    # TF's allocator waits 10 s for memory to free up before it gives up: room for that.
    code = "import tensorflow as tf\nx = tf.ones([1024, 1024, 1024])\n"
    result = run(api, code, "tensorflow", timeout_s=30)
    assert result["status"] == "memory", result
    assert result["error"]["type"] == "ResourceExhaustedError", result


def test_numpy_memory_bomb_is_contained(api: httpx.Client) -> None:
    result = run(api, "import numpy as np\nx = np.ones((1024, 1024, 1024))\n")
    assert result["status"] == "memory", result


def test_fork_bomb_ends_that_run_only(api: httpx.Client) -> None:
    result = run(api, "import os\nwhile True:\n    os.fork()\n", timeout_s=20)
    assert result["status"] == "error" and result["error"]["type"] == "BlockingIOError", result


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
    # The run's 127.0.0.1 is its own namespace's loopback, where nothing listens.
    assert result["error"]["type"] == "ConnectionRefusedError", result


def test_a_runs_network_is_its_own_loopback_and_nothing_else(api: httpx.Client) -> None:
    code = ("import socket, fcntl, struct\nprint(socket.if_nameindex())\n"
            "for host in ('10.0.0.1', '1.1.1.1'):\n"
            "    try:\n        socket.create_connection((host, 80), timeout=2)\n"
            "    except OSError as exc:\n        print(host, exc.errno)\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    fcntl.ioctl(s, 0x8914, struct.pack('16sh', b'lo', 0))\n"
            "except OSError as exc:\n    print('lo down', exc.errno)\n"
            "print(open('/etc/hosts').read().split())\n")
    result = run(api, code)
    assert result["status"] == "ok", result
    lines = result["stdout"].splitlines()
    assert lines[0] == "[(1, 'lo')]"  # no interface but its own loopback
    assert lines[1:3] == ["10.0.0.1 101", "1.1.1.1 101"]  # ENETUNREACH: no route anywhere
    assert lines[3] == "lo down 1"  # EPERM: it can't change even that
    assert "sandbox" in lines[4] and "127.0.0.1" in lines[4]


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
    if os.getuid() != 0:
        pytest.skip("rootless: runs keep the server's uid and see only the read-only view")
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
    # The run is pid 1 of its own pid namespace: its parent is not there to be seen.
    code = ("import os, signal\nprint(os.getppid())\nos.kill(-1, signal.SIGKILL)\n"
            "os.kill(os.getppid(), signal.SIGKILL)\n")
    result = run(api, code)
    assert result["stdout"] == "0\n", result
    assert result["status"] == "error" and result["error"]["type"] == "ProcessLookupError", result


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


# ---- a run ends at its limit, whatever it does to its pipes -----------------

# Writes a frame of the sandbox protocol to every descriptor the run inherited:
# one of them is the result pipe.
FORGE = """import json, os, struct
def forge(body):
    frame = struct.pack('>I', len(body)) + body
    for fd in range(3, 64):
        try:
            os.write(fd, frame)
        except OSError:
            pass
"""


def test_a_run_flooding_its_pipes_does_not_hold_up_another(api: httpx.Client) -> None:
    # Every spare is supervised from the template's one loop: a run that floods
    # its pipes, or never finishes, must not stall the others' relays.
    import concurrent.futures

    flood = "import os, time\nwhile True:\n    os.write(1, b'x' * 100)\n    time.sleep(0.001)\n"
    with concurrent.futures.ThreadPoolExecutor(2) as workers:
        flooding = workers.submit(run, api, flood, timeout_s=5)
        time.sleep(0.3)
        quick = run(api, "print('through')")
        assert quick["status"] == "ok" and quick["stdout"] == "through\n", quick
        assert quick["elapsed_s"] < 2, quick
        assert flooding.result()["status"] in ("output_limit", "timeout")


@pytest.mark.parametrize("repeat", [1, 50])
def test_closing_inherited_descriptors_does_not_escape_the_wall_clock(
        api: httpx.Client, repeat: int) -> None:
    code = "import os, time\nos.closerange(3, 1024)\ntime.sleep(600)\n"
    result = run(api, code, timeout_s=2, repeat=repeat)
    assert result["status"] == "timeout", result
    assert result["elapsed_s"] < 2 + 2, result  # the slot is back within timeout + 2 s
    assert api.get("/api/health").json()["pool"]["busy"] == 0


def test_malformed_result_frame_kills_the_run(api: httpx.Client) -> None:
    code = FORGE + "forge(b'{not json at all')\nimport time\ntime.sleep(600)\n"
    result = run(api, code, timeout_s=5)
    assert result["status"] == "killed" and result["error"]["type"] == "ProtocolError", result
    assert result["elapsed_s"] < 3, result


def test_oversized_result_is_refused(api: httpx.Client) -> None:
    code = FORGE + ("values = [{'name': f'v{i}', 'kind': 'number', 'preview': '1'} for i in range(10000)]\n"
                    "forge(json.dumps({'type': 'result', 'result': {'status': 'ok', 'values': values}}).encode())\n")
    result = run(api, code)
    assert result["status"] == "killed" and result["error"]["type"] == "ProtocolError", result
    assert "values" in result["error"]["message"] and result["values"] == []


def test_a_forged_graph_is_cleaned_by_the_server(api: httpx.Client) -> None:
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
           '<a href="javascript:alert(3)"><text>link</text></a><text x="1" y="2">hello</text>'
           '<image href="http://example.com/x.png"/><foreignObject><p>hi</p></foreignObject></svg>')
    graph = {"kind": "autograd", "title": "forged", "svg": svg, "nodes": 1}
    body = {"type": "result", "result": {"status": "ok", "graphs": [graph]}}
    code = FORGE + f"forge({json.dumps(body).encode()!r})\nimport time\ntime.sleep(600)\n"
    result = run(api, code, timeout_s=5)
    assert result["status"] == "ok", result
    cleaned = result["graphs"][0]["svg"]
    for bad in ("script", "onload", "javascript", "href", "image", "foreignObject", "alert"):
        assert bad not in cleaned, cleaned
    assert "hello" in cleaned  # plain text of an allowed element survives


# ---- the kernel surface is closed ----------------------------------------------

SYSCALL = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" \
          "def call(nr, *args):\n    ret = libc.syscall(nr, *args)\n" \
          "    print(ret, ctypes.get_errno() if ret < 0 else 0)\n"


def test_new_namespaces_cannot_be_made(api: httpx.Client) -> None:
    # x86_64: clone = 56, unshare = 272, setns = 308, clone3 = 435
    code = SYSCALL + ("call(56, 0x10000000 | 0x20000 | 0x40000000 | 17, 0, 0, 0, 0)\n"
                      "call(272, 0x10000000)\ncall(308, 0, 0)\ncall(435, 0, 0)\n")
    result = run(api, code)
    # EPERM for namespaces; clone3 says ENOSYS so that libc falls back to clone.
    assert result["stdout"] == "-1 1\n-1 1\n-1 1\n-1 38\n", result


def test_new_mount_api_is_refused(api: httpx.Client) -> None:
    # fsopen = 430, fsmount = 432, move_mount = 429, open_tree = 428, mount_setattr = 442
    code = SYSCALL + ("call(430, b'tmpfs', 0)\ncall(432, 0, 0, 0)\ncall(429, 0, b'', 0, b'/tmp', 0)\n"
                      "call(428, 0, b'/', 1)\ncall(442, 0, b'/', 0, 0, 0)\n")
    result = run(api, code)
    assert result["stdout"] == "-1 1\n" * 5, result


def test_io_uring_bpf_perf_and_userfaultfd_are_refused(api: httpx.Client) -> None:
    # io_uring_setup = 425, bpf = 321, perf_event_open = 298, userfaultfd = 323, keyctl = 250
    code = SYSCALL + ("import ctypes as c\nparams = c.create_string_buffer(120)\n"
                      "call(425, 8, params)\ncall(321, 0, 0, 0)\ncall(298, 0, 0, -1, -1, 0)\n"
                      "call(323, 0)\ncall(250, 0, 0)\n")
    result = run(api, code)
    assert result["stdout"] == "-1 1\n" * 5, result


def test_only_unix_and_ip_sockets_can_be_made(api: httpx.Client) -> None:
    code = ("import socket\nfor family, proto in ((socket.AF_UNIX, 0), (socket.AF_INET, 0), "
            "(socket.AF_INET6, 0), (16, 0), (16, 12), (16, 9), (16, 6), (16, 16), (40, 0), (17, 0), "
            "(0, 0), (3, 0)):\n"
            "    try:\n        socket.socket(family, socket.SOCK_DGRAM if family != 16 else "
            "socket.SOCK_RAW, proto).close()\n        print(family, proto, 'ok')\n"
            "    except OSError as exc:\n        print(family, proto, exc.errno)\n"
            "for family in (16, 40):\n    try:\n        socket.socketpair(family)\n"
            "    except OSError as exc:\n        print('pair', family, exc.errno)\n")
    result = run(api, code)
    # unix, inet, inet6 work, and netlink's routing protocol (getifaddrs); netlink's
    # netfilter, audit, xfrm and generic protocols, vsock, packet, unspec and ax25
    # are refused with EPERM, and so are netlink and vsock socket pairs
    assert result["stdout"].split("\n")[:-1] == [
        "1 0 ok", "2 0 ok", "10 0 ok", "16 0 ok",
        "16 12 1", "16 9 1", "16 6 1", "16 16 1", "40 0 1", "17 0 1", "0 0 1", "3 0 1",
        "pair 16 1", "pair 40 1"], result


def test_run_holds_no_capabilities_and_cannot_regain_them(api: httpx.Client) -> None:
    code = ("caps = [l for l in open('/proc/self/status') if l.startswith('Cap')]\n"
            "print(''.join(caps), end='')\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')])\n")
    result = run(api, code)
    lines = result["stdout"].splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == ["CapInh", "CapPrm", "CapEff", "CapBnd",
                                                          "CapAmb"], result
    assert all(line.split()[1] == "0" * 16 for line in lines[:5]), result
    assert lines[5] == "['1']"


def test_threads_still_start_without_clone3(api: httpx.Client) -> None:
    code = ("import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
            "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(out))\n"
            "import torch\ntorch.set_num_threads(2)\nprint(float(torch.ones(256, 256).sum()))\n")
    result = run(api, code)
    assert result["stdout"] == "[0, 1, 2, 3, 4, 5, 6, 7]\n65536.0\n", result


# ---- memory, priority, and what a run leaves behind ------------------------------

def test_runs_come_first_for_the_oom_killer_and_last_for_the_cpu(api: httpx.Client) -> None:
    result = run(api, "import os\nprint(open('/proc/self/oom_score_adj').read().strip(), os.nice(0))")
    assert result["stdout"] == "1000 5\n", result


def test_health_says_how_memory_is_bounded(api: httpx.Client) -> None:
    health = api.get("/api/health").json()
    if os.getuid() == 0:
        assert health["memory_limit"].startswith("memory cgroup v"), health
    else:
        assert health["memory_limit"].startswith("per-process rlimits only"), health
        assert health["cpu_limit"].endswith("only: no CPU cgroup on this host"), health


def test_a_run_cannot_lift_its_cgroup_limits(api: httpx.Client) -> None:
    code = """import os
found, lifted = [], []
for top, _, files in os.walk('/sys/fs/cgroup'):
    for name in files:
        if name in ('cpu.cfs_quota_us', 'cpu.max', 'memory.limit_in_bytes', 'memory.max',
                    'cgroup.procs', 'tasks'):
            found.append(name)
            try:
                with open(os.path.join(top, name), 'w') as f:
                    f.write('max' if name.endswith('max') else '-1')
                lifted.append(os.path.join(top, name))
            except OSError:
                pass
try:
    os.listdir('/sys/fs')
    hidden = False
except OSError:  # not there (rootless: no cgroups bound) or not enterable
    hidden = True
print(hidden or len(found) > 0, lifted)
"""
    result = run(api, code)
    assert result["status"] == "ok", result
    walked, lifted = result["stdout"].split(" ", 1)
    assert lifted.strip() == "[]", result
    # A root server binds the pool's cgroup folders into the template's view,
    # under parents the runs' uids can't enter; if they could, the walk saw them.
    # A rootless one binds none.
    assert walked == "True", result


def test_nothing_written_outside_scratch_outlives_the_run(api: httpx.Client) -> None:
    targets = ["/planted.py", f"{ROOT}/planted.py", f"{ROOT}/sandbox/planted.py",
               f"{sys.prefix}/planted.py", "/etc/planted.py", "/usr/planted.py"]
    code = (f"import os\nfor path in {targets!r}:\n    try:\n"
            "        open(path, 'w').write('PLANTED = 1')\n        print('wrote', path)\n"
            "    except OSError as exc:\n        print(type(exc).__name__)\n")
    first = run(api, code)
    assert "wrote" not in first["stdout"], first
    assert len(first["stdout"].splitlines()) == len(targets)
    second = run(api, "try:\n    import planted\n    print('imported')\nexcept ImportError:\n"
                      f"    print('clean')\nimport os\nprint([os.path.exists(p) for p in {targets!r}])")
    assert second["stdout"] == f"clean\n{[False] * len(targets)}\n", second


def test_a_run_inherits_no_descriptor_but_its_pipes(api: httpx.Client) -> None:
    code = ("import os\nlinks = [os.readlink(f'/proc/self/fd/{fd}') for fd in os.listdir('/proc/self/fd')]\n"
            "print(sorted(set(l.split(':')[0] for l in links)))\n")
    result = run(api, code)
    # stdio and the protocol pipes, /dev/null, and the fd listing itself: no folder, no socket
    kinds = result["stdout"].strip()
    assert "socket" not in kinds and "'/proc'" not in kinds and "'/'" not in kinds, result
