"""What a run printed, as the page shows it: warnings apart, server paths cut, and the
TensorFlow-name table that error hints come from."""

from __future__ import annotations

import importlib
import sys

import pytest

from app.resources import PACKAGE
from app.web.names import TABLE, did_you_mean
from app.web.run_text import split_stderr, tidy_paths
from sandbox.protocol import ErrorInfo


def test_every_pytorch_name_in_the_table_exists_in_the_installed_torch() -> None:
    torch = importlib.import_module("torch")
    importlib.import_module("torch.utils.data")
    missing = []
    for row in TABLE:
        owner, *parts = row.pytorch.split(".")
        found: object = torch if owner == "torch" else torch.Tensor
        for part in parts:
            found = getattr(found, part, None)
        if found is None:
            missing.append(row.pytorch)
    assert missing == []
    assert len({row.anchor for row in TABLE}) == len(TABLE), "anchors are unique"


@pytest.mark.parametrize(("message", "typed", "answer"), [
    ("module 'torch' has no attribute 'reduce_sum'", "torch.reduce_sum", "torch.sum"),
    ("module 'torch.nn' has no attribute 'Dense'", "torch.nn.Dense", "torch.nn.Linear"),
    ("'Tensor' object has no attribute 'cast'", "Tensor.cast", "Tensor.to"),
])
def test_a_tensorflow_name_on_the_pytorch_side_gets_its_row(
        message: str, typed: str, answer: str) -> None:
    hint = did_you_mean(ErrorInfo(type="AttributeError", message=message), "pytorch")
    assert hint is not None and (hint.typed, hint.name.pytorch) == (typed, answer)


def test_no_hint_for_other_errors_names_or_the_tensorflow_side() -> None:
    error = ErrorInfo(type="AttributeError", message="module 'torch' has no attribute 'reduce_sum'")
    assert did_you_mean(error, "tensorflow") is None
    assert did_you_mean(ErrorInfo(type="AttributeError", message="module 'torch' has no "
                                  "attribute 'frobnicate'"), "pytorch") is None
    assert did_you_mean(ErrorInfo(type="NameError", message="name 'x' is not defined"),
                        "pytorch") is None


def test_warnings_go_apart_with_their_source_lines_and_the_rest_stays() -> None:
    site = next(p for p in sys.path if p.endswith("site-packages"))
    text = (f"{site}/keras/src/ops.py:12: FutureWarning: the old way\n"
            "  warnings.warn(msg)\n"
            "[W1206 12:00:00.000 socket.cpp:755] [c10d] The hostname of the client socket\n"
            "my own message\n"
            "W0000 00:00:1733 123 cpu_feature_guard.cc:12] oneDNN custom operations\n")
    out = split_stderr(text)
    assert out.warnings[0] == "keras/src/ops.py:12: FutureWarning: the old way\n  warnings.warn(msg)"
    assert len(out.warnings) == 3 and out.rest == "my own message"


def test_server_folders_are_cut_from_paths() -> None:
    shown = tidy_paths(f'File "{PACKAGE.parent}/sandbox/execute.py", line 3\n'
                       f'File "{sys.prefix}/lib/python3.11/site-packages/torch/nn/x.py"')
    assert str(PACKAGE.parent) not in shown and sys.prefix not in shown
    assert 'File "sandbox/execute.py"' in shown and '"torch/nn/x.py"' in shown
