"""The library of uploaded packs: versions on disk, owners and checks in SQLite.

    data_dir/packs/<pack>/<version>/   one immutable folder per upload

An upload is unpacked safely (`unpack.py`) into a staging folder, loaded
strictly like any pack (YAML safe-loaded, Markdown sanitised), and moved
into place; then every step runs in the sandbox in the background, on the
server's own pool behind learners' runs, and the version becomes `ready`
or `failed` with a report naming file and line. The first upload of a pack
id makes the uploader its author: the token it sent, or a new 128-bit one,
so one author can own several packs with one token; later versions need
that token. An upload whose files are those of one of the pack's versions
makes no new version. Bundled packs' ids are taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import logging
import shutil
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app import tokens
from app.packs.loader import PackError, load_pack
from app.packs.models import Catalog, Pack, VersionedPackId
from app.packs.source import each
from app.packs.unpack import UnpackError, UnpackLimits, unpack
from app.store import packs as store
from app.store.db import Database
from app.store.packs import VersionStatus
from app.tokens import digest, new_token

log = logging.getLogger(__name__)
MIN_TOKEN_CHARS = 22  # 128 bits, URL-safe base64
# Runs every step of a version (the site's run pipeline, behind learners' runs):
# whether it passed, and its report, one row per check, naming file and line.
Checker = Callable[[Pack, Path], Awaitable[tuple[bool, list[dict[str, Any]]]]]


@dataclasses.dataclass(frozen=True)
class PackLimits:
    """How big an uploaded pack may be, past its zip's limits (settings: pack_max_*)."""

    lessons: int = 50
    steps_per_lesson: int = 40


class UploadRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclasses.dataclass(frozen=True)
class Receipt:
    pack: str
    version: int
    author_token: str | None  # only when this upload made the pack (the one it sent, if any)


def _versioned(pack: Pack, version: int) -> Pack:
    """The version as the site serves it: its ids namespaced, so versions never clash."""
    prefix = str(VersionedPackId(pack.id, version))
    ids = {lesson.id: f"{prefix}--{lesson.id}" for lesson in pack.lessons}
    lessons = [lesson.model_copy(update={
        "id": ids[lesson.id], "pack": prefix,
        "prerequisites": [ids.get(p, p) for p in lesson.prerequisites]})
        for lesson in pack.lessons]
    return pack.model_copy(update={"id": prefix, "title": f"{pack.title} (version {version})",
                                   "lessons": lessons})


class Library:
    def __init__(self, root: Path, db: Database, bundled: Callable[[], Catalog], checker: Checker,
                 limits: UnpackLimits | None = None, pack_limits: PackLimits | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.root, self.db, self.bundled, self.checker = root, db, bundled, checker
        self.limits = limits or UnpackLimits()
        self.pack_limits = pack_limits or PackLimits()
        # An upload a crash interrupted left its staging folder: nothing in it is a version.
        shutil.rmtree(self.staging_root, ignore_errors=True)
        self.on_change = on_change
        self._checks: set[asyncio.Task[None]] = set()
        self._adding = asyncio.Lock()  # two identical uploads at once make one version
        self._contents: dict[tuple[str, int], str] = {}  # a version's files' digest
        self.checking: set[str] = set()  # versioned pack ids whose check is running
        # Every version on disk, loaded: the site's catalog includes them (who may
        # see which is decided per request: `listed`, `may_view`).
        self.packs: dict[str, Pack] = {}
        for folder in sorted(root.glob("*/*")) if root.is_dir() else []:
            if folder.name.isdigit() and not folder.parent.name.startswith("."):
                name, number = folder.parent.name, int(folder.name)
                self._add(name, number, self._load_stored(name, number), announce=False)

    def _load_stored(self, pack: str, version: int) -> Pack | None:
        try:
            return self.load(pack, version)
        except PackError as exc:  # a pack loaded once loads again, unless its folder was hurt
            log.error("uploaded pack %s v%d no longer loads: %s", pack, version, exc)
            return None

    def _add(self, pack: str, version: int, loaded: Pack | None, announce: bool = True) -> None:
        if loaded is not None:
            self.packs[str(VersionedPackId(pack, version))] = _versioned(loaded, version)
        if announce and self.on_change is not None:
            self.on_change()

    def folder(self, pack: str, version: int) -> Path:
        return self.root / pack / str(version)

    @property
    def staging_root(self) -> Path:
        return self.root / ".incoming"

    def _read_upload(self, data: bytes, staging: Path) -> Pack:
        """Unzip, parse and sanitise: seconds of CPU for a big pack, so never on the loop."""
        try:
            unpack(data, staging, self.limits)
            pack = load_pack(staging)
        except UnpackError as exc:
            raise UploadRefused(422, str(exc)) from None
        except PackError as exc:  # every problem found, a line each
            raise UploadRefused(422, "\n".join(relative(str(e), staging)
                                               for e in each(exc))) from None
        limits = self.pack_limits
        if len(pack.lessons) > limits.lessons:
            raise UploadRefused(422, f"pack.yaml: {len(pack.lessons)} lessons; a pack may have "
                                     f"{limits.lessons} (setting pack_max_lessons)")
        for lesson in pack.lessons:
            if len(lesson.steps) > limits.steps_per_lesson:
                raise UploadRefused(422, f"{relative(str(lesson.file), staging)}: "
                                         f"{len(lesson.steps)} steps; a lesson may have "
                                         f"{limits.steps_per_lesson} (setting "
                                         f"pack_max_steps_per_lesson)")
        return pack

    async def upload(self, data: bytes, token: str | None) -> Receipt:
        staging = self.staging_root / new_token()
        try:  # every way out of here removes the staging folder
            pack = await asyncio.to_thread(self._read_upload, data, staging)
            if self.bundled().pack(pack.id) is not None:
                raise UploadRefused(409, f"pack id '{pack.id}' is taken by a bundled pack")
            made = await store.owner(self.db, pack.id)
            if made is not None and (token is None
                                     or not tokens.same(token, made.author_digest)):
                raise UploadRefused(403, f"pack '{pack.id}' belongs to another author: "
                                         "send its author token to add a version")
            if made is None and token is not None and len(token) < MIN_TOKEN_CHARS:
                raise UploadRefused(422, "an author token has at least 22 characters: "
                                         "leave it out to be given one")
            author = token if token is not None else new_token()
            async with self._adding:
                if (same := await self._same_as(pack.id, staging)) is not None:
                    raise UploadRefused(409, f"pack '{pack.id}': this upload is identical to "
                                             f"version {same}; no new version was made")
                try:
                    version = await store.add_version(self.db, pack.id, digest(author),
                                                      pack.title)
                except PermissionError:
                    raise UploadRefused(403, f"pack '{pack.id}' belongs to another "
                                             "author") from None
                target = self.folder(pack.id, version)
                target.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # read again from its folder, where its files' paths now point
        self._add(pack.id, version, await asyncio.to_thread(self._load_stored, pack.id, version))
        self._start_check(pack.id, version)
        return Receipt(pack.id, version, None if made is not None else author)

    async def _same_as(self, pack: str, staging: Path) -> int | None:
        """The version of `pack` whose files are exactly the upload's, if one is."""
        versions = [v.version for v in await store.versions(self.db, pack)]
        if not versions:
            return None
        upload = await asyncio.to_thread(contents, staging)
        for version in versions:
            if (pack, version) not in self._contents:  # a version's files never change
                self._contents[pack, version] = await asyncio.to_thread(
                    contents, self.folder(pack, version))
            if self._contents[pack, version] == upload:
                return version
        return None

    async def authored(self, token: str | None) -> list[tuple[str, list[store.Version]]]:
        """The packs this token is the author of, with their versions."""
        if not token:
            return []
        mine = [p for p in await store.visible(self.db, digest(token))
                if tokens.same(token, p.author_digest)]
        return [(p.id, await store.versions(self.db, p.id)) for p in mine]

    def _start_check(self, pack: str, version: int) -> None:
        versioned = str(VersionedPackId(pack, version))
        task = asyncio.get_running_loop().create_task(self._check(pack, version))
        self._checks.add(task)
        self.checking.add(versioned)

        def finished(done: asyncio.Task[None]) -> None:
            self._checks.discard(done)
            self.checking.discard(versioned)

        task.add_done_callback(finished)

    async def _check(self, pack_id: str, version: int) -> None:
        folder = self.folder(pack_id, version)
        try:
            ok, report = await self.checker(await asyncio.to_thread(load_pack, folder), folder)
            await store.finish_check(self.db, pack_id, version,
                                     VersionStatus.ready if ok else VersionStatus.failed, report)
        except asyncio.CancelledError:
            raise  # the server is stopping: checked again at the next start
        except Exception as exc:
            log.exception("checking %s v%d failed", pack_id, version)
            await store.finish_check(self.db, pack_id, version, VersionStatus.failed, [
                {"step": "", "status": "error", "message": f"the check failed: {exc}",
                 "file": "", "line": None}])

    async def resume(self) -> None:
        """Check again what a restart interrupted."""
        for version in await store.checking(self.db):
            self._start_check(version.pack, version.version)

    async def stop(self) -> None:
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)

    def load(self, pack: str, version: int) -> Pack:
        return load_pack(self.folder(pack, version))

    def zip_bytes(self, pack: str, version: int) -> bytes:
        folder = self.folder(pack, version)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{pack}/{path.relative_to(folder)}")
        return buffer.getvalue()

    async def delete(self, pack: str, version: int) -> None:
        await store.delete_version(self.db, pack, version)
        self.packs.pop(str(VersionedPackId(pack, version)), None)
        self._contents.pop((pack, version), None)
        if self.on_change is not None:
            self.on_change()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder(pack, version))

    # ---- who sees what ------------------------------------------------------------

    async def may_view(self, versioned: str, token: str | None, class_pack: str | None) -> bool:
        """A version's lessons: its author always; others once it is ready, and only
        if the pack is published or their class was made from this version."""
        parsed = VersionedPackId.parse(versioned)
        made = await store.owner(self.db, parsed.pack) if parsed is not None else None
        if parsed is None or made is None:
            return False
        if token is not None and tokens.same(token, made.author_digest):
            return True
        found = [v for v in await store.versions(self.db, parsed.pack)
                 if v.version == parsed.version]
        return bool(found) and found[0].status == VersionStatus.ready and (
            made.published or class_pack == versioned)

    async def listed(self, packs: list[Pack], token: str | None,
                     class_pack: str | None) -> list[Pack]:
        """The packs a catalog shows this caller: the bundled ones, then one entry for each
        uploaded pack they may see (their own, the published, their class's): their class's
        version, else the latest ready one. A version that failed its check, or is still
        being checked, is never listed: its author previews it from its own page."""
        shown: list[Pack] = []
        uploaded: dict[str, dict[int, Pack]] = {}  # pack name -> version -> its catalog entry
        for pack in packs:
            parsed = VersionedPackId.parse(pack.id)
            if parsed is None:
                shown.append(pack)
            else:
                uploaded.setdefault(parsed.pack, {})[parsed.version] = pack
        pinned = VersionedPackId.parse(class_pack) if class_pack else None
        if not uploaded:  # the bundled packs alone: nothing to look up
            return shown
        visible = {p.id for p in await store.visible(self.db, digest(token) if token else None)}
        for name, versions in uploaded.items():
            if pinned is not None and pinned.pack == name and pinned.version in versions:
                shown.append(versions[pinned.version])
            elif name in visible:
                ready = [v.version for v in await store.versions(self.db, name)
                         if v.status == VersionStatus.ready and v.version in versions]
                if ready:
                    shown.append(versions[max(ready)])
        return shown

    async def class_pack(self, pack: str, version: int | None, token: str | None) -> str:
        """The catalog id of the version a new class pins: a ready one the caller may use."""
        made = await store.owner(self.db, pack)
        mine = made is not None and token is not None and tokens.same(token, made.author_digest)
        if made is None or not (made.published or mine):
            raise UploadRefused(404, f"No pack '{pack}' you can teach from.")
        ready = [v.version for v in await store.versions(self.db, pack)
                 if v.status == VersionStatus.ready]
        if version is None and ready:
            version = ready[-1]
        if version is None or version not in ready:
            raise UploadRefused(409, f"Pack '{pack}' has no ready version "
                                     f"{version if version is not None else ''}".rstrip()
                                + ": a class needs one that passed its check.")
        return str(VersionedPackId(pack, version))


def relative(message: str, folder: Path) -> str:
    """A message naming files in `folder` as the author wrote them: relative to the pack."""
    return message.replace(str(folder.resolve()) + "/", "").replace(str(folder) + "/", "")


def contents(folder: Path) -> str:
    """A digest of a pack folder's files, their paths and bytes: equal for equal uploads."""
    hashed = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hashed.update(f"{path.relative_to(folder).as_posix()}\0{len(data)}\0".encode())
        hashed.update(data)
    return hashed.hexdigest()
