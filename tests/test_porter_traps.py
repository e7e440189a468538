"""Every trap the porter can report is linked to the lesson section that teaches it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from app.packs.loader import load_packs
from sandbox.porter.traps import LESSONS, UNTAUGHT

ROOT = Path(__file__).resolve().parents[1]


def trap_keys_in_source() -> set[str]:
    keys = set()
    for path in (ROOT / "sandbox" / "porter").rglob("*.py"):
        keys |= set(re.findall(r'Trap\(\s*"([a-z0-9-]+)"', path.read_text()))
    return keys


def lesson_sections() -> dict[str, set[str]]:
    sections = {}
    for path in (ROOT / "lessons" / "core").glob("*.md"):
        text = path.read_text()
        front = yaml.safe_load(text.split("---")[1])
        sections[front["id"]] = {line[3:].strip() for line in text.splitlines()
                                 if line.startswith("## ")}
    return sections


def test_every_trap_key_is_linked_or_marked_untaught() -> None:
    keys = trap_keys_in_source()
    assert len(keys) > 10
    assert keys - set(LESSONS) - UNTAUGHT == set()
    assert set(LESSONS) - keys == set()


def test_every_linked_section_exists() -> None:
    sections = lesson_sections()
    missing = [(key, lesson, title) for key, (lesson, title) in LESSONS.items()
               if title not in sections.get(lesson, set())]
    assert missing == []


def test_no_key_is_both_linked_and_untaught() -> None:
    assert set(LESSONS) & UNTAUGHT == set()


def test_every_linked_section_is_a_step_the_site_serves() -> None:
    """The port page finds a trap's step by title in the lessons the site loads, so each
    section must be a step's title (Markdown marks dropped) in a lesson listed by its pack."""
    served = {lesson.id: {step.title for step in lesson.steps}
              for lesson in load_packs(ROOT / "lessons").lessons}
    missing = [(key, lesson, title) for key, (lesson, title) in LESSONS.items()
               if title not in served.get(lesson, set())]
    assert missing == []
