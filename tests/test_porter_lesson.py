"""The "Porting a whole model" lesson shows the porter's own output: the module its first
step's PyTorch side runs is, block for block, what the porter writes for its Keras model
today, so a change to the porter that the lesson doesn't follow fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.packs.loader import load_lesson
from sandbox.porter import Port

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "lessons" / "core" / "26-porting-a-whole-model.md"


def top_level_blocks(source: str) -> dict[str, str]:
    """Each top-level function and class of `source`, by name, as its syntax tree: the
    code itself, whatever the line breaks and comments (trap comments may be rewrapped)."""
    return {node.name: ast.dump(node) for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef | ast.ClassDef)}


@pytest.fixture(scope="module")
def first_step() -> tuple[Port, str]:
    step = load_lesson(LESSON).steps[0]
    namespace: dict[str, object] = {"__name__": "lesson_step"}
    exec(compile(step.tensorflow.code, str(LESSON), "exec"), namespace)
    ported = namespace["ported"]
    assert isinstance(ported, Port)
    return ported, step.pytorch.code


def test_the_lessons_module_is_the_one_the_porter_writes(first_step: tuple[Port, str]) -> None:
    ported, shown = first_step
    written, lesson = top_level_blocks(ported.source), top_level_blocks(shown)
    for name in (ported.class_name, "tf_same_pad"):
        assert lesson[name] == written[name], name
    for trap in ported.traps:  # each trap's comment where the porter put it
        assert f"# {trap.key}: " in shown
    # The tidy-ups the lesson says it made: load() and its safetensors import left out.
    assert "load" in written and "load" not in lesson
    assert "from safetensors" not in shown and "import safetensors" not in shown


def test_every_trap_the_lesson_prints_links_to_a_step_of_it(
        first_step: tuple[Port, str]) -> None:
    from sandbox.porter.traps import LESSONS

    ported, _ = first_step
    steps = {step.title for step in load_lesson(LESSON).steps}
    # kernel-layout is the first porting lesson's; every other trap this model sets off
    # is taken apart in a step of this lesson, and its report links there.
    taught_here = {t.key for t in ported.traps} - {"kernel-layout"}
    assert len(taught_here) >= 3
    assert {key: LESSONS[key][0] for key in taught_here} == dict.fromkeys(
        taught_here, "porting-a-whole-model")
    assert {LESSONS[key][1] for key in taught_here} <= steps
