"""`sidebyside port` as a user types it: a real pool, real files, its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sandbox.executor import PORT_FILES

keras = pytest.importorskip("keras")
SIDEBYSIDE = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parent.parent


def sidebyside(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([*SIDEBYSIDE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_port_writes_the_files_and_exits_zero_when_proved(tmp_path: Path) -> None:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    keras.Model(inputs, keras.layers.Dense(2, name="out")(x), name="tiny").save(
        tmp_path / "tiny.keras")
    done = sidebyside("port", "tiny.keras", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Tiny: proved")
    assert "max abs err" in done.stdout and "kernel" in done.stdout  # a trap, in words
    assert sorted(os.listdir(tmp_path / "tiny-torch")) == sorted(PORT_FILES)


def test_port_exits_non_zero_unless_proved_and_refuses_a_full_folder(tmp_path: Path) -> None:
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 2, name="double")(inputs)
    keras.Model(inputs, keras.layers.Dense(2, name="out")(x), name="lam").save(
        tmp_path / "lam.keras")
    done = sidebyside("port", "lam.keras", "-o", "ported", "--layout", "nchw", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("Lam: partial")
    assert "double (Lambda)" in done.stdout
    full = sidebyside("port", "lam.keras", "-o", "ported", cwd=tmp_path)
    assert full.returncode == 2 and "not an empty folder" in full.stderr
    (tmp_path / "notes.txt").write_text("not a model")
    wrong = sidebyside("port", "notes.txt", cwd=tmp_path)
    assert wrong.returncode == 2 and ".keras or .h5" in wrong.stderr


def test_port_proves_on_the_users_inputs_and_says_why_they_dont_fit(tmp_path: Path) -> None:
    inputs = keras.Input((6,))
    keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs), name="tiny").save(
        tmp_path / "tiny.keras")
    np.save(tmp_path / "mine.npy", np.ones((5, 6)))
    done = sidebyside("port", "tiny.keras", "--inputs", "mine.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "proved on: seeded random inputs (seed 0, 2 samples); your inputs (5 samples)" \
        in done.stdout
    np.save(tmp_path / "wide.npy", np.ones((5, 7)))
    wide = sidebyside("port", "tiny.keras", "-o", "w", "--inputs", "wide.npy", cwd=tmp_path)
    assert wide.returncode == 1 and wide.stdout.startswith("port: failed")
    assert "expects shape (batch, 6); the given array has shape (5, 7)" in wide.stdout
    assert not (tmp_path / "w").exists()
    (tmp_path / "mine.csv").write_text("1,2\n")
    csv = sidebyside("port", "tiny.keras", "--inputs", "mine.csv", cwd=tmp_path)
    assert csv.returncode == 2 and "a .npy file" in csv.stderr
