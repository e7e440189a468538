"""The built wheel is the whole site: installed, it serves lessons from anywhere.

The package is built into a wheel and installed into a fresh virtualenv, and
`sidebyside serve` runs from an unrelated working directory, so templates,
CSS and the bundled lessons can only come from the wheel, and so does the
sandbox package that a run's view is given. The frameworks
and other dependencies come from this environment through a .pth file
(installing torch and TensorFlow again would take minutes and gigabytes);
the project's own package comes only from the wheel.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from app.settings import ROOT
from tests.conftest import free_port

pytestmark = pytest.mark.slow

# What setup.py needs; the build runs on a copy so it leaves nothing in the checkout.
SOURCES = ("pyproject.toml", "setup.py", "app", "sandbox", "templates", "static", "lessons")
STYLESHEET = re.compile(r'<link rel="stylesheet" href="(/static/css/app\.css\?v=\w+)"')


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", *args], check=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    (work / "src").mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, work / "src" / name,
                            ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
        else:
            shutil.copy2(ROOT / name, work / "src" / name)
    # The environment's own setuptools: an isolated build would download one.
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(work / "dist"), str(work / "src"))
    (built,) = (work / "dist").glob("sidebyside-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)],
                   check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Appended after the venv's own site-packages, and .pth files found there are
    # not run: this environment's editable install of the project stays invisible.
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site, "project-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    # --ignore-installed: pip sees this environment's sidebyside through the .pth
    # and must neither uninstall it nor count it as installed.
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
         str(wheel))
    return venv


def test_wheel_carries_templates_static_and_lessons(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static", "lessons"):
        shipped = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*")
                   if p.is_file() and "editor/src" not in p.as_posix()
                   and "__pycache__" not in p.parts}
        assert {f"app/{folder}/{name}" for name in shipped} <= names, folder
    assert not any(name.startswith("app/static/editor/src/") for name in names)
    assert "app/resources.py" in names and "sandbox/pool.py" in names


def test_installed_wheel_serves_a_lesson_its_css_and_a_sandboxed_run_from_elsewhere(
        installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import app.resources as r; print(r.__file__); print(r.STATIC)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True)
    module, static = where.stdout.split()
    assert module.startswith(str(installed)) and static.startswith(str(installed))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDEBYSIDE_", "PYTHON"))}
    # The sandbox too, as an image runs it: the package it puts in the runs' view
    # is the installed one. The smallest pool keeps the test quick.
    env |= {"SIDEBYSIDE_PORT": str(port), "SIDEBYSIDE_POOL_SIZE": "1",
            "SIDEBYSIDE_SPARES_MEMORY_MB": "64"}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([str(installed / "bin" / "sidebyside"), "serve"],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=5).json()["status"] == "ok":
                    break
            time.sleep(0.3)
        catalog = httpx.get(f"{url}/", timeout=30)
        assert catalog.status_code == 200 and 'href="/lessons/example-layers"' in catalog.text
        page = httpx.get(f"{url}/lessons/example-layers", timeout=30)
        assert page.status_code == 200, page.text[-2000:]
        css = STYLESHEET.search(page.text)
        assert css, "the lesson page links no stylesheet"
        sheet = httpx.get(url + css.group(1), timeout=30)
        assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")
        assert sheet.content == (ROOT / "static" / "css" / "app.css").read_bytes()
        run = httpx.post(f"{url}/api/runs", timeout=60, json={
            "framework": "pytorch", "code": "import sandbox\nprint(sandbox.__file__)"}).json()
        assert run["status"] == "ok", run
        assert run["stdout"].startswith(str(installed)), run["stdout"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
