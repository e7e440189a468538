"""The bundled packs pass `sidebyside check`: every pair runs and agrees, every exercise works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import ROOT


@pytest.mark.slow
def test_bundled_lesson_packs_pass_check() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "check", str(ROOT / "lessons"), "--json"],
        capture_output=True, text=True, timeout=1200, cwd=ROOT)
    report = json.loads(completed.stdout) if completed.stdout.strip().startswith(("{", "[")) else None
    assert completed.returncode == 0, (report, completed.stderr[-4000:])
    assert report is not None
