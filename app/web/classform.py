"""The "start a class" form: one entry per pack, its ready versions to pick from, and
what was typed and ticked kept when the form comes back with a message."""

from __future__ import annotations

import dataclasses
import re

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.classes.errors import ClassRefused
from app.classes.models import MAX_LESSONS, MAX_TITLE_CHARS
from app.packs.library import Library
from app.packs.models import Pack, VersionedPackId
from app.store import packs as store
from app.store.packs import VersionStatus


@dataclasses.dataclass(frozen=True)
class PackVersion:
    number: int | None  # None: a bundled pack, which has no versions
    pack: Pack

    def lessons(self) -> list[tuple[str, str]]:
        """(the id the form names, title) of each lesson a class can teach."""
        prefix = f"{self.pack.id}--" if self.number is not None else ""
        return [(lesson.id.removeprefix(prefix), lesson.title)
                for lesson in self.pack.lessons if lesson.steps]


@dataclasses.dataclass(frozen=True)
class PackChoice:
    name: str  # the form's value: a bundled pack's id, an uploaded pack's name
    title: str
    versions: list[PackVersion]  # ready ones, the newest first

    @property
    def uploaded(self) -> bool:
        return self.versions[0].number is not None

    def version(self, number: int | None) -> PackVersion | None:
        return next((v for v in self.versions if v.number == number), None)


@dataclasses.dataclass(frozen=True)
class Typed:
    """What the form holds: as first shown, or as sent back."""

    title: str = ""
    pack: str = ""
    version: int | None = None
    lessons: tuple[str, ...] = ()


async def pack_choices(packs: list[Pack], library: Library) -> list[PackChoice]:
    """The packs a class may start from: the bundled ones, and the uploaded ones the
    caller's catalogue lists, each with every version of it that is ready."""
    choices: list[PackChoice] = []
    uploaded: list[str] = []
    for pack in packs:
        parsed = VersionedPackId.parse(pack.id)
        if parsed is None:
            if any(lesson.steps for lesson in pack.lessons):
                choices.append(PackChoice(pack.id, pack.title, [PackVersion(None, pack)]))
        elif parsed.pack not in uploaded:
            uploaded.append(parsed.pack)
    loaded = [(VersionedPackId.parse(key), pack) for key, pack in library.packs.items()]
    for name in uploaded:
        ready = {v.version for v in await store.versions(library.db, name)
                 if v.status == VersionStatus.ready}
        kept = sorted((PackVersion(at.version, pack) for at, pack in loaded
                       if at is not None and at.pack == name and at.version in ready),
                      key=lambda v: v.number or 0, reverse=True)
        kept = [v for v in kept if v.lessons()]
        if kept:  # the catalogue's title names a version: "Example pack (version 2)"
            title = re.sub(r" \(version \d+\)$", "", kept[0].pack.title)
            choices.append(PackChoice(name, title, kept))
    return choices


def preselected(choices: list[PackChoice], pack: str | None, version: str | None) -> Typed:
    """The form as first shown: the pack and version asked for (from a version's
    page), else the first pack's newest version."""
    chosen = next((c for c in choices if c.name == pack), choices[0] if choices else None)
    if chosen is None:
        return Typed()
    number = int(version) if version and version.isdigit() and len(version) < 10 else None
    found = chosen.version(number) or chosen.versions[0]
    return Typed(pack=chosen.name, version=found.number)


def typed(form: FormData) -> Typed:
    """The form as sent; an uploaded pack may also come as `name--vN`."""
    pack = str(form.get("pack") or "")[:200]
    parsed = VersionedPackId.parse(pack)
    number: int | None
    if parsed is not None:
        pack, number = parsed.pack, parsed.version
    else:
        raw = str(form.get(f"version:{pack}") or "")
        number = int(raw) if raw.isdigit() and len(raw) < 10 else None
    lessons = [str(x)[:200] for x in form.getlist("lessons")[:MAX_LESSONS * 4]]
    return Typed(title=str(form.get("title") or "")[:MAX_TITLE_CHARS * 4], pack=pack,
                 version=number, lessons=tuple(dict.fromkeys(lessons)))


def lessons_of(choice: PackVersion, ticked: tuple[str, ...]) -> list[str] | None:
    """The ticked lessons that belong to the chosen version, in the pack's order; None
    (every lesson) when none is ticked."""
    chosen = [lesson for lesson, _ in choice.lessons() if lesson in ticked]
    return chosen or None


def plain(exc: Exception) -> str:
    """A refusal in the words an instructor reads on the form."""
    if isinstance(exc, ValidationError):
        return " ".join(_field_message(str(e["msg"]).removeprefix("Value error, "))
                        for e in exc.errors())
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    return exc.message if isinstance(exc, ClassRefused) else str(exc)


def _field_message(message: str) -> str:
    if message == "title must not be empty":
        return "Give the class a title."
    if message.startswith("title is longer"):
        return f"The title is too long: keep it under {MAX_TITLE_CHARS} characters."
    if message.startswith("title must not contain"):
        return "The title has characters that can't be shown; type it again."
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
