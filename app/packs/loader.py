"""Find and load lesson packs: `pack.yaml` manifests and the lessons they list.

Strict loading (the default, and what an upload relies on) raises a
`PackError` listing every problem found (`PackErrors` when there are
several): each lesson is read even when one before it fails. The server and
`sidebyside check` load leniently instead: packs come from outside, and one
broken lesson should not take the others down, so what fails is left out and
each of its problems kept on `Catalog.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.packs.lesson_file import ID_PATTERN, front_matter_line, parse_lesson
from app.packs.models import Catalog, Lesson, Pack
from app.packs.source import PackError, combined, each, line_of, read_text, read_yaml, validate
from sandbox.protocol import Framework

__all__ = ["MANIFEST", "PackError", "load_lesson", "load_pack", "load_packs"]

MANIFEST = "pack.yaml"

_Keep = Callable[[PackError], None]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    authors: list[str] = Field(default_factory=list)
    description: str = Field(min_length=1)
    targets: dict[Framework, str] = Field(default_factory=dict)
    lessons: list[str] = Field(min_length=1)


def load_lesson(file: Path | str, pack_id: str = "") -> Lesson:
    """One lesson file on its own (its prerequisites are not looked up)."""
    return parse_lesson(Path(file), pack_id)


def load_pack(path: Path | str) -> Pack:
    """A pack folder (or its pack.yaml), loaded strictly and on its own."""
    path = Path(path)
    return _load([path / MANIFEST if path.is_dir() else path], strict=True).packs[0]


def load_packs(root: Path | str, *, strict: bool = True) -> Catalog:
    """Every pack whose pack.yaml lies under `root` (or is `root`), in path order."""
    root = Path(root)
    if root.is_file():
        return _load([root], strict=strict)
    if not root.is_dir():
        raise PackError(root, 0, "no such file or folder")
    return _load(sorted(root.rglob(MANIFEST)), strict=strict)


def _load(manifests: list[Path], *, strict: bool) -> Catalog:
    errors: list[PackError] = []
    keep = errors.extend  # every problem, one by one
    packs: list[Pack] = []
    for manifest in manifests:
        try:
            packs.append(_read_pack(manifest, lambda exc: keep(each(exc))))
        except PackError as exc:
            keep(each(exc))
    packs = _unique(packs, lambda exc: keep(each(exc)))
    if strict and errors:
        raise combined(errors)
    return Catalog(packs=packs, errors=[str(e) for e in errors])


def _read_pack(manifest: Path, keep: _Keep) -> Pack:
    if not manifest.is_file():
        raise PackError(manifest, 0, "no such file")
    data, node = read_yaml(read_text(manifest), manifest, 1)
    meta = validate(Manifest, data, node, manifest, 1, "pack.yaml")
    lessons: list[Lesson] = []
    for i, name in enumerate(meta.lessons):
        line = 1 + line_of(node, ["lessons", i])
        try:
            lessons.append(parse_lesson(_lesson_path(manifest, name, line), meta.id))
        except PackError as exc:
            keep(exc)
    return Pack(**meta.model_dump(exclude={"lessons"}), path=manifest.parent, lessons=lessons)


def _lesson_path(manifest: Path, name: str, line: int) -> Path:
    folder = manifest.parent
    path = folder / name
    # a pack from outside must not make the server read files beside it
    if not path.resolve().is_relative_to(folder.resolve()):
        raise PackError(manifest, line, f"lesson '{name}' is outside the pack's folder")
    if path.suffix != ".md":
        raise PackError(manifest, line, f"lesson '{name}' is not a .md file")
    if not path.is_file():
        raise PackError(manifest, line, f"lesson '{name}' does not exist")
    return path


def _unique(packs: list[Pack], keep: _Keep) -> list[Pack]:
    """Drop repeated pack and lesson ids (the first one wins); check prerequisites."""
    pack_paths: dict[str, Path] = {}
    lesson_files: dict[str, Path] = {}
    kept: list[Pack] = []
    for pack in packs:
        if pack.id in pack_paths:
            keep(PackError(pack.path / MANIFEST, _id_line(pack.path / MANIFEST),
                           f"pack id '{pack.id}' is already used by {pack_paths[pack.id]}"))
            continue
        pack_paths[pack.id] = pack.path / MANIFEST
        lessons = []
        for lesson in pack.lessons:
            if lesson.id in lesson_files:
                keep(PackError(lesson.file, front_matter_line(lesson.file, "id"),
                               f"lesson id '{lesson.id}' is already used by "
                               f"{lesson_files[lesson.id]}"))
                continue
            lesson_files[lesson.id] = lesson.file
            lessons.append(lesson)
        kept.append(pack.model_copy(update={"lessons": lessons}))
    for pack in kept:
        for lesson in pack.lessons:
            for i, prerequisite in enumerate(lesson.prerequisites):
                problem = ("is this lesson itself" if prerequisite == lesson.id
                           else None if prerequisite in lesson_files else "is not a known lesson")
                if problem:
                    line = front_matter_line(lesson.file, "prerequisites", i)
                    keep(PackError(lesson.file, line, f"prerequisite '{prerequisite}' {problem}"))
    return kept


def _id_line(manifest: Path) -> int:
    return 1 + line_of(read_yaml(read_text(manifest), manifest, 1)[1], ["id"])
