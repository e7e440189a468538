from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.check import run_problem
from app.packs.models import Snippet
from app.settings import ROOT
from sandbox.protocol import ErrorInfo, RunResult, RunStatus

EXAMPLE = ROOT / "lessons" / "example"


def sidebyside_check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIDEBYSIDE_POOL_SIZE": "2"}
    return subprocess.run([sys.executable, "-m", "app.cli", "check", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_the_example_pack_passes_check() -> None:
    done = sidebyside_check(EXAMPLE, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["load_errors"] == []
    kinds = [(r["step"], r["kind"], r["status"]) for r in report["results"]]
    assert kinds == [("sum-along-an-axis", "pair", "ok"), ("a-dense-layer", "pair", "ok"),
                     ("reshape-to-a-column", "pair", "ok"),
                     ("reshape-to-a-column", "exercise", "ok")]
    dense = report["results"][1]["names"]
    assert set(dense) == {"y", "kernel"} and dense["kernel"]["shapes"] == [[4, 3], [4, 3]]


BROKEN = """\
---
id: broken
title: Broken
summary: Fails on purpose.
level: beginner
minutes: 1
---

## Values differ

```python tensorflow
import tensorflow as tf
y = tf.constant([1.0, 2.0])
```

```python pytorch
import torch
y = torch.tensor([1.0, 2.5])
```

```yaml compare
names: [y]
```

## Raises

```python tensorflow
x = 1
```

```python pytorch
x = 1
y = x / 0
```

## Starter already passes

```python tensorflow
y = 1
```

```python pytorch
y = 1
```

```yaml exercise
side: pytorch
compare: [y]
```

```python starter
import torch
y = torch.ones(2)
```

```python solution
import torch
y = torch.ones(2)
```

## Runs fine

```python tensorflow
y = 1
```

```python pytorch
y = 1
```

## Solution binds nothing

```python tensorflow
z = 1
```

```python pytorch
z = 1
```

```yaml exercise
side: tensorflow
compare: [z]
```

```python starter
z = None
```

```python solution
import tensorflow as tf
y = tf.ones(2)
```
"""


def line(text: str) -> int:
    """The line of BROKEN that starts with `text`."""
    return next(i for i, x in enumerate(BROKEN.splitlines(), 1) if x.startswith(text))


@pytest.mark.slow
def test_a_broken_pack_fails_and_names_each_failing_step(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text("id: broken\ntitle: B\nversion: '1'\ndescription: B.\n"
                                        "lessons: [01.md, 02.md]\n")
    lesson = tmp_path / "01.md"
    lesson.write_text(BROKEN)
    done = sidebyside_check(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert f"error     {tmp_path / 'pack.yaml'}:5: lesson '02.md' does not exist" in out
    assert f"mismatch  broken/values-differ  {lesson}:9" in out
    assert "          y: values differ (max |diff| = 0.5)" in out
    assert f"error     broken/raises  {lesson}:25" in out
    assert f"          {lesson}:33: pytorch: ZeroDivisionError: division by zero" in out
    assert "ok        broken/starter-already-passes" in out
    assert f"error     broken/starter-already-passes (exercise)  {lesson}:36" in out
    assert any(line.startswith(f"          {lesson}:52: the starter already matches")
               for line in out)
    assert "ok        broken/runs-fine" in out
    assert f"error     broken/solution-binds-nothing (exercise)  {lesson}:{line('## Solution')}" in out
    assert f"          {lesson}:{line('y = tf.ones') - 1}: the solution binds no z, so no answer " \
           "could ever pass" in out
    assert out[-1] == "7 checks: 3 ok, 1 mismatch, 3 error; 1 load error"


def test_a_path_without_packs_exits_2_before_starting_a_sandbox(tmp_path: Path) -> None:
    done = sidebyside_check(tmp_path)
    assert done.returncode == 2
    assert "no pack.yaml under" in done.stderr


def test_a_run_error_is_named_at_its_line_in_the_lesson_file() -> None:
    snippet = Snippet(code="a = 1\nb = a / 0\n", file=Path("lesson.md"), line=40)
    raised = RunResult(status=RunStatus.error,
                       error=ErrorInfo(type="ZeroDivisionError", message="division by zero", line=2))
    assert run_problem(snippet, raised, "pytorch") == (
        "lesson.md:41: pytorch: ZeroDivisionError: division by zero")
    timed_out = RunResult.failed(RunStatus.timeout, "Timeout", "ran past 10 s")
    assert run_problem(snippet, timed_out, "starter") == (
        "lesson.md:40: starter: timeout: Timeout: ran past 10 s")
    assert run_problem(snippet, RunResult(status=RunStatus.ok), "tensorflow") is None


@pytest.mark.slow
def test_a_new_pack_passes_check_as_it_stands(tmp_path: Path) -> None:
    folder = tmp_path / "My First_Pack"
    made = subprocess.run([sys.executable, "-m", "app.cli", "new", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["01-first-steps.md", "pack.yaml"]
    done = sidebyside_check(folder, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [(r["kind"], r["status"]) for r in report["results"]] == [
        ("pair", "ok"), ("pair", "ok"), ("exercise", "ok")]
    from app.packs import load_pack

    assert load_pack(folder).id == "my-first-pack"
    again = subprocess.run([sys.executable, "-m", "app.cli", "new", str(folder)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 2 and "not an empty folder" in again.stderr


@pytest.mark.slow
def test_a_graph_block_that_draws_nothing_fails_check(tmp_path: Path) -> None:
    folder = tmp_path / "graphs"
    subprocess.run([sys.executable, "-m", "app.cli", "new", str(folder)], cwd=ROOT, check=True,
                   capture_output=True)
    lesson = folder / "01-first-steps.md"
    lesson.write_text(lesson.read_text().replace(
        "```yaml compare\nnames: [total]\n```",
        "```yaml compare\nnames: [total]\n```\n\n```yaml graph\npytorch: no_such_name\n```", 1))
    done = sidebyside_check(folder, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    first = json.loads(done.stdout)["results"][0]
    assert first["status"] == "error"
    assert "graph: nothing could be drawn for `no_such_name` on the pytorch side" in \
        first["problems"][0]
    # a name with an autograd history draws
    lesson.write_text(lesson.read_text().replace("pytorch: no_such_name", "pytorch: total").replace(
        "a = torch.tensor([1.0, 2.0, 3.0])\ntotal", "a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)\ntotal", 1))
    fixed = sidebyside_check(folder)
    assert fixed.returncode == 0, fixed.stdout


def test_check_lists_every_parse_error_before_running_anything(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text("id: broken\ntitle: B\nversion: '1'\ndescription: B.\n"
                                        "lessons: [01.md, 02.md]\n")
    one = BROKEN.replace("level: beginner", "level: expert").replace("minutes: 1", "minutes: 0") \
        .replace("```python pytorch\nx = 1\ny = x / 0", "```python pytorh\nx = 1\ny = x / 0")
    (tmp_path / "01.md").write_text(one)
    (tmp_path / "02.md").write_text("no front matter\n")
    for path, expected in ((tmp_path, 4), (tmp_path / "01.md", 3)):
        done = sidebyside_check(path, "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads(done.stdout)
        errors = report["load_errors"]
        assert len(errors) == expected and report["results"] == [], errors
        assert errors[0].startswith(f"{tmp_path / '01.md'}:5: front matter: level")
        assert errors[1].startswith(f"{tmp_path / '01.md'}:6: front matter: minutes")
        assert errors[2].startswith(f"{tmp_path / '01.md'}:{line('y = x / 0') - 2}:")
    text = sidebyside_check(tmp_path).stdout.splitlines()
    assert [x for x in text if x.startswith("error     ")][3].startswith(
        f"error     {tmp_path / '02.md'}:1: a lesson starts with YAML front matter")
    assert text[-1] == "0 checks: 0 ok, 0 mismatch, 0 error; 4 load errors"
