from __future__ import annotations

from pathlib import Path

import pytest

from app.packs.loader import PackError, load_lesson, load_pack, load_packs
from app.packs.render import render_markdown
from app.settings import ROOT

EXAMPLE = ROOT / "lessons" / "example"

LESSON = """\
---
id: one
title: One
summary: A lesson.
level: beginner
minutes: 5
---

Intro.

## First step

```python tensorflow
a = 1
```

```python pytorch
a = 1
```
"""

MANIFEST = """\
id: pack
title: Pack
version: 1.0.0
description: A pack.
lessons:
  - 01.md
"""


def write_pack(folder: Path, lessons: dict[str, str], manifest: str = MANIFEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pack.yaml").write_text(manifest)
    for name, text in lessons.items():
        (folder / name).write_text(text)
    return folder


def test_example_pack_loads_with_every_kind_of_block() -> None:
    pack = load_pack(EXAMPLE)
    assert pack.id == "example"
    [lesson] = pack.lessons
    assert lesson.pack == "example"
    assert [s.id for s in lesson.steps] == ["sum-along-an-axis", "a-dense-layer",
                                            "reshape-to-a-column"]
    reduce, dense, reshape = lesson.steps
    assert reduce.pitfall and "`torch.mean`" in reduce.pitfall
    assert dense.compare and dense.compare.exprs("pytorch")["kernel"] == "linear.weight.T"
    assert dense.compare.exprs("tensorflow") == {"y": "y", "kernel": "dense.kernel"}
    assert dense.graph and dense.graph.pytorch == "y"
    assert reshape.exercise and reshape.exercise.side == "pytorch"
    assert "reshape" in reshape.exercise.solution.code
    assert "```" not in reduce.prose and "axis=" in reduce.prose
    assert lesson.intro.startswith("This lesson is the example")


def test_snippet_lines_point_at_the_code_in_the_file() -> None:
    lesson = load_pack(EXAMPLE).lessons[0]
    lines = lesson.file.read_text().splitlines()
    for step in lesson.steps:
        assert lines[step.line - 1].startswith("## ")
        snippets = [step.tensorflow, step.pytorch]
        if step.exercise:
            snippets += [step.exercise.starter, step.exercise.solution]
        for snippet in snippets:
            code = snippet.code.splitlines()
            assert lines[snippet.line - 1] == code[0]
            assert lines[snippet.file_line(len(code)) - 1] == code[-1]


def test_a_catalog_lists_lessons_in_pack_order(tmp_path: Path) -> None:
    second = LESSON.replace("id: one", "id: two")
    write_pack(tmp_path / "p", {"01.md": LESSON, "02.md": second},
               MANIFEST.replace("  - 01.md", "  - 02.md\n  - 01.md"))
    catalog = load_packs(tmp_path)
    assert [x.id for x in catalog.lessons] == ["two", "one"]
    assert catalog.lesson("one") is not None and catalog.lesson("nope") is None


BROKEN = [
    # (what is wrong, old text, new text, line named, words in the message)
    ("no front matter", "---\nid: one", "id: one", 1, "front matter"),
    ("level not allowed", "level: beginner", "level: expert", 5, "level"),
    ("field unknown", "minutes: 5", "minutes: 5\nduration: 5", 7, "duration: unknown field"),
    ("field missing", "summary: A lesson.\n", "", 2, "summary: Field required"),
    ("front matter never closed", "minutes: 5\n---", "minutes: 5\n", 1, "never closed"),
    ("bad front matter YAML", "title: One", "title: [One", 4, "invalid YAML"),
    ("id not a slug", "id: one", "id: One Lesson", 2, "id:"),
    ("no pytorch snippet", "```python pytorch\na = 1\n```\n", "", 11, "no ```python pytorch"),
    ("two tensorflow snippets", "```python pytorch", "```python tensorflow", 17,
     "second tensorflow block"),
    ("unknown block kind", "```python pytorch", "```python pytorh", 17, "unknown block kind"),
    ("wrong language", "```python pytorch", "```yaml pytorch", 17, "```python pytorch"),
    ("kind without language", "```python pytorch", "```pytorch", 17, "```python pytorch"),
    ("block before any step", "Intro.", "```yaml compare\nnames: [a]\n```", 9, "inside a step"),
    ("block never closed", "a = 1\n```\n", "a = 1\n", 13, "not closed before line 16"),
    ("last block never closed", "a = 1\n```\n\n```python pytorch\na = 1\n```\n",
     "a = 1\n```\n\n```python pytorch\na = 1\n", 17, "never closed"),
    ("step twice", None, ("\n## First step!\n\n```python tensorflow\na = 1\n```\n\n"
     "```python pytorch\na = 1\n```\n"), 21, "already used on line 11"),
    ("bad compare YAML", None, "\n```yaml compare\nnames: [a\n```\n", 23, "invalid YAML"),
    ("compare tolerance", None, "\n```yaml compare\nnames: [a]\nrtol: x\n```\n", 23, "rtol"),
    ("transform of an uncompared name", None,
     "\n```yaml compare\nnames: [a]\npytorch:\n  b: b.T\n```\n", 24, "'b' is not in names"),
    ("exercise without starter", None, "\n```yaml exercise\nside: pytorch\ncompare: [a]\n```\n", 21,
     "```python starter"),
    ("starter without exercise", None, "\n```python starter\na = 2\n```\n", 21, "exercise block"),
    ("exercise without compare list", None,
     ("\n```yaml exercise\nside: pytorch\n```\n```python starter\na = 2\n```\n"
     "```python solution\na = 1\n```\n"), 22, "compare: Field required"),
    ("exercise side unknown", None,
     ("\n```yaml exercise\nside: jax\ncompare: [a]\n```\n```python starter\na = 2\n```\n"
     "```python solution\na = 1\n```\n"), 22, "side"),
    ("two timed markers", "a = 1\n```\n", "a = 1\n# %% timed\na = 2\n# %% timed\na = 3\n```\n",
     17, "second `# %% timed`"),
    ("empty snippet", "```python pytorch\na = 1", "```python pytorch\n", 17, "empty"),
    ("step heading without letters", "## First step", "## ...", 11, "letters or digits"),
    ("no steps", LESSON[LESSON.index("## First"):], "", 8, "at least one step"),
    ("device unknown", "minutes: 5\n", "minutes: 5\ndevice: tpu\n", 7, "device"),
]


@pytest.mark.parametrize(("old", "new", "line", "words"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_each_lesson_error_names_file_and_line(tmp_path: Path, old: str | None, new: str,
                                               line: int, words: str) -> None:
    # old None: the new text is appended (a blank line, then line 21 onwards)
    assert old is None or old in LESSON
    text = LESSON + new if old is None else LESSON.replace(old, new, 1)
    folder = write_pack(tmp_path / "p", {"01.md": text})
    with pytest.raises(PackError) as caught:
        load_pack(folder)
    assert str(caught.value).startswith(f"{folder / '01.md'}:{line}: ")
    assert words in str(caught.value)


def test_a_lesson_may_ask_for_a_gpu_worker_and_asks_for_a_cpu_by_default(tmp_path: Path) -> None:
    gpu = LESSON.replace("minutes: 5\n", "minutes: 5\ndevice: gpu\n")
    folder = write_pack(tmp_path / "p", {"01.md": gpu})
    assert load_pack(folder).lessons[0].device == "gpu"
    assert load_lesson(write_pack(tmp_path / "q", {"01.md": LESSON}) / "01.md").device == "cpu"


def test_a_lesson_may_give_its_runs_more_time_and_the_runs_carry_it(tmp_path: Path) -> None:
    from app.pipeline.requests import build_request

    slow = LESSON.replace("minutes: 5\n", "minutes: 5\ntimeout_s: 30\n")
    lesson = load_pack(write_pack(tmp_path / "p", {"01.md": slow})).lessons[0]
    step = lesson.steps[0]
    assert lesson.timeout_s == 30
    assert build_request("pytorch", step.pytorch.code, lesson=lesson, step=step).timeout_s == 30
    plain = load_lesson(write_pack(tmp_path / "q", {"01.md": LESSON}) / "01.md")
    assert build_request("pytorch", "x = 1", lesson=plain, step=plain.steps[0]).timeout_s is None
    with pytest.raises(PackError, match="timeout_s"):
        load_pack(write_pack(tmp_path / "r", {"01.md": slow.replace("timeout_s: 30",
                                                                     "timeout_s: 0")}))


def test_a_missing_lesson_is_named_on_its_manifest_line(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", {}, MANIFEST)
    with pytest.raises(PackError, match=r"pack\.yaml:6: lesson '01\.md' does not exist"):
        load_pack(folder)


def test_a_lesson_outside_the_pack_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text(LESSON)
    folder = write_pack(tmp_path / "p", {}, MANIFEST.replace("01.md", "../secret.md"))
    with pytest.raises(PackError, match=r"pack\.yaml:6: .*outside the pack"):
        load_pack(folder)


def test_a_manifest_error_names_its_field_line(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "p", {"01.md": LESSON}, MANIFEST.replace("version: 1.0.0\n",
                                                                         "version: 1.0.0\nlicense: x\n"))
    with pytest.raises(PackError, match=r"pack\.yaml:4: pack\.yaml: license: unknown field"):
        load_pack(folder)


def test_an_unknown_prerequisite_names_its_line(tmp_path: Path) -> None:
    text = LESSON.replace("minutes: 5", "minutes: 5\nprerequisites:\n  - zero")
    write_pack(tmp_path / "p", {"01.md": text})
    with pytest.raises(PackError, match=r"01\.md:8: prerequisite 'zero' is not a known lesson"):
        load_packs(tmp_path)


def test_a_lesson_cannot_be_its_own_prerequisite(tmp_path: Path) -> None:
    write_pack(tmp_path / "p", {"01.md": LESSON.replace("minutes: 5", "minutes: 5\nprerequisites: [one]")})
    with pytest.raises(PackError, match=r"01\.md:7: prerequisite 'one' is this lesson itself"):
        load_packs(tmp_path)


def test_a_lesson_id_used_by_two_packs_is_an_error(tmp_path: Path) -> None:
    write_pack(tmp_path / "a", {"01.md": LESSON})
    write_pack(tmp_path / "b", {"01.md": LESSON}, MANIFEST.replace("id: pack", "id: other"))
    with pytest.raises(PackError, match=r"b/01\.md:2: lesson id 'one' is already used by .*a/01\.md"):
        load_packs(tmp_path)


def test_lenient_loading_keeps_what_loads_and_lists_the_rest(tmp_path: Path) -> None:
    broken = LESSON.replace("id: one", "id: two").replace("```python pytorch", "```python pytorh")
    write_pack(tmp_path / "p", {"01.md": LESSON, "02.md": broken},
               MANIFEST + "  - 02.md\n  - 03.md\n")
    catalog = load_packs(tmp_path, strict=False)
    assert [x.id for x in catalog.lessons] == ["one"]
    assert len(catalog.errors) == 2
    assert catalog.errors[0].startswith(f"{tmp_path / 'p' / '02.md'}:17: ")
    assert catalog.errors[1].startswith(f"{tmp_path / 'p' / 'pack.yaml'}:8: ")


HOSTILE = """\
<script>alert(1)</script>

Text <img src=x onerror="alert(2)"> and <a href="javascript:alert(3)" onclick="alert(4)">a link</a>
and [another](javascript:alert(5)) and <b onmouseover="alert(6)">bold</b>.
"""


def test_script_handlers_and_javascript_urls_in_prose_are_stripped(tmp_path: Path) -> None:
    text = LESSON.replace("Intro.", HOSTILE).replace(
        "a = 1\n```\n", "a = 1\n```\n\n" + HOSTILE + "\n```pitfall\n" + HOSTILE + "```\n", 1)
    lesson = load_lesson(write_pack(tmp_path / "p", {"01.md": text}) / "01.md")
    step = lesson.steps[0]
    for prose in (lesson.intro, step.prose, step.pitfall or ""):
        html = render_markdown(prose)
        assert "<b>bold</b>" in html and "a link</a>" in html
        for bad in ("<script", "alert(1)", "onerror", "onclick", "onmouseover", "javascript:",
                    "<img"):
            assert bad not in html.replace("[another](javascript:alert(5))", ""), bad


def test_prose_keeps_formatting_code_tables_and_links() -> None:
    html = render_markdown("*a* `b` [c](https://pytorch.org)\n\n| x | y |\n|--:|---|\n| 1 | 2 |\n\n"
                           "```python\nimport torch\n```\n")
    assert "<em>a</em>" in html and "<code>b</code>" in html
    assert 'href="https://pytorch.org"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert '<th style="text-align:right">x</th>' in html
    assert '<code class="language-python"><span class="hl-kn">import</span>' in html


def test_every_parse_error_of_a_pack_is_listed_in_one_pass(tmp_path: Path) -> None:
    # 01.md: two front matter fields wrong, and two of its three steps broken
    one = LESSON.replace("level: beginner", "level: expert").replace("minutes: 5", "minutes: 0") \
        + ("\n## Second step\n\n```python tensorflow\nb = 1\n```\n"
           "\n## Third step\n\n```python tensorflow\nc = 1\n```\n\n```python pytorch\nc = 1\n```\n"
           "\n```yaml compare\nnames: [c\n```\n")
    two = LESSON.replace("id: one", "id: two").replace("title: One", "title: [Two")
    three = LESSON.replace("id: one", "id: three").replace("```python pytorch", "```python pytorh")
    folder = write_pack(tmp_path / "p", {"01.md": one, "02.md": two, "03.md": three},
                        MANIFEST + "  - 02.md\n  - 03.md\n  - 04.md\n")
    with pytest.raises(PackError) as caught:
        load_pack(folder)
    lines = str(caught.value).splitlines()
    first, second, third = (folder / name for name in ("01.md", "02.md", "03.md"))
    assert [x.split(": ")[0] for x in lines] == [
        f"{first}:5", f"{first}:6", f"{first}:21", f"{first}:39", f"{second}:4",
        f"{third}:17", f"{folder / 'pack.yaml'}:9"], lines
    assert "level" in lines[0] and "minutes" in lines[1] and "(and" not in lines[0]
    assert "second-step' has no ```python pytorch" in lines[2]
    assert "invalid YAML" in lines[3] and "invalid YAML" in lines[4]
    assert "unknown block kind" in lines[5] and "'04.md' does not exist" in lines[6]
    # the lenient loader, which `sidebyside check` uses, lists each of them on its own
    assert len(load_packs(folder, strict=False).errors) == 7


def test_a_code_sample_in_a_steps_prose_stays_in_its_prose(tmp_path: Path) -> None:
    text = LESSON.replace("## First step\n", "## First step\n\nLike this:\n\n```python\nb = 2\n```\n")
    [step] = load_lesson(write_pack(tmp_path / "p", {"01.md": text}) / "01.md").steps
    assert step.prose == "Like this:\n\n```python\nb = 2\n```"
