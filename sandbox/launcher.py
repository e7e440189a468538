"""The bubblewrap command line that starts a template in its outer fence.

Inside, the template sees only what Python and the frameworks need, all of
it read-only: /usr, the Python installation, the virtual environment and
this package. No home directory, no data dir, no /etc beyond a few
harmless files, no environment from the server, and a network namespace of
its own (so not even the server's loopback is reachable).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox.gpu_binds import Gpu, bwrap_args

SANDBOX_DIR = Path(__file__).resolve().parent

# Files from /etc that libraries read and that hold nothing secret.
ETC_FILES = ("ld.so.cache", "localtime", "nsswitch.conf", "fonts", "alternatives", "mime.types")

# What a run is told about itself: a user with a home in its scratch dir.
PASSWD = "root:x:0:0:root:/tmp:/bin/false\n" + "".join(
    f"run{i}:x:{61000 + i}:{61000 + i}:run:/tmp:/bin/false\n" for i in range(256)
)
GROUP = "root:x:0:\n" + "".join(f"run{i}:x:{61000 + i}:\n" for i in range(256))
SYS_FOLDERS = ("/sys", "/sys/bus", "/sys/bus/pci", "/sys/bus/pci/devices")
# The sandbox's own name resolves to its loopback, so multi-process code that
# looks itself up (torch.distributed's gloo) finds the run's own 127.0.0.1.
HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n"

RUN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # TF's oneDNN ops generate their kernels (JIT) afresh in every process:
    # ≈ 70 ms of each TensorFlow spare's start-up, for snippet-sized tensors
    # that TF's own (Eigen) kernels handle as fast. Convolutions on large
    # images are slower. Eigen's matmuls still call oneDNN's sgemm, whose
    # kernels the template generates once for all spares (onednn.py).
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # Concurrent runs on few cores: spinning OpenMP threads starve each other.
    "OMP_NUM_THREADS": "1",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # spares share a GPU: no process takes it all
    "KERAS_BACKEND": "tensorflow",
    "MPLCONFIGDIR": "/tmp",
}


def _readonly_roots() -> list[str]:
    """Python, its packages and this package, wherever they are installed.

    Only package folders from sys.path are added, never the project folder
    itself: it holds the data dir.
    """
    roots = {sys.base_prefix, sys.prefix, str(SANDBOX_DIR)}
    for path in sys.path:
        inside = any(path.startswith(r + "/") for r in roots) or path.startswith("/usr/")
        if path.endswith("-packages") and os.path.isdir(path) and not inside:
            roots.add(path)
    return sorted(roots)


def identity_fds() -> tuple[int, int, int]:
    """Pipes holding /etc/passwd, /etc/group and /etc/hosts for bwrap to read (a few KiB)."""
    fds = []
    for text in (PASSWD, GROUP, HOSTS):
        r, w = os.pipe()
        os.write(w, text.encode())
        os.close(w)
        fds.append(r)
    return fds[0], fds[1], fds[2]


def bwrap_command(argv: list[str], passwd_fd: int, group_fd: int, hosts_fd: int,
                  cgroup_dirs: list[str] | None = None, gpu: Gpu | None = None) -> list[str]:
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session",
            "--hostname", "sandbox",
            # First, so that a checkout or venv under /tmp is bound on top of it, not hidden.
            "--tmpfs", "/tmp"]
    if os.getuid() != 0:  # rootless: a user namespace supplies the capabilities
        args += ["--unshare-user"]
    # The template needs them to build each run's namespaces; every run drops them all.
    args += ["--cap-add", "ALL"]
    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # bwrap would make /etc 0700 for the binds below: the runs' uids could not enter it.
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # Readable by the runs' own uids (bwrap's default for these is 0600).
    for fd, path in ((passwd_fd, "/etc/passwd"), (group_fd, "/etc/group"),
                     (hosts_fd, "/etc/hosts")):
        args += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    roots = _readonly_roots()
    # bwrap makes missing parent folders 0700, which a run's plain uid can't enter.
    parents = sorted({str(p) for r in roots for p in Path(r).parents if str(p) != "/"})
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for root in roots:
        args += ["--ro-bind", root, root]
    args += ["--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp"]
    # An empty, listable PCI device list: gloo (torch.distributed) lists it to
    # describe its interface and fails when it can't. A GPU pool adds its one GPU.
    for folder in SYS_FOLDERS:
        args += ["--perms", "0755", "--dir", folder]
    args += bwrap_args(gpu)  # one GPU's nodes and sysfs folder, when the pool uses one
    for folder in cgroup_dirs or ():  # supervisors make each run's cgroups in here
        args += ["--bind", folder, folder]
    # The root bwrap built is a tmpfs the template's uid may own (rootless):
    # read-only, so nothing a run writes outside its scratch can outlive it.
    args += ["--remount-ro", "/"]
    args += ["--clearenv"]
    for key, value in RUN_ENV.items():
        args += ["--setenv", key, value]
    args += ["--setenv", "PYTHONPATH", str(SANDBOX_DIR.parent)]
    return [*args, "--", *argv]


def template_argv(ctrl_fd: int, framework: str, insecure: bool = False,
                  kernels: bool = True) -> list[str]:
    return [sys.executable, "-m", "sandbox.template", "--ctrl-fd", str(ctrl_fd),
            "--framework", framework] + (["--insecure"] if insecure else []) + (
            [] if kernels else ["--no-kernels"])


PROBE = (
    "import os,sys\n"
    "from sandbox.isolation import confine_run\n"
    "from sandbox.namespaces import RunNamespaces, is_real_root, own_namespaces\n"
    "if not is_real_root():\n"
    "    own_namespaces()\n"
    "from sandbox.limits import Limits\n"
    "pid = RunNamespaces().fork()\n"
    "if pid == 0:\n"
    "    confine_run(Limits(), 0); print('isolated', flush=True); os._exit(0)\n"
    "_, status = os.waitpid(pid, 0)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def probe_command(passwd_fd: int, group_fd: int, hosts_fd: int) -> list[str]:
    """A quick bwrap + per-run isolation round trip, run by `check_sandbox`."""
    return bwrap_command([sys.executable, "-c", PROBE], passwd_fd, group_fd, hosts_fd)
