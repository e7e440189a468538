"""Uploaded lesson packs: upload a version, follow its check, list, download, remove, publish.

An author is whoever holds a pack's token (`Authorization: Bearer`), given
by its first upload. `SIDEBYSIDE_ADMIN_TOKEN` publishes a pack to everyone's
list, or takes it back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile
from pydantic import BaseModel

from app import tokens
from app.deps import LibraryDep, SettingsDep, bearer_token
from app.packs.library import Library, UploadRefused
from app.packs.models import VersionedPackId
from app.store import packs as store
from app.store.packs import VersionStatus
from app.tokens import digest

router = APIRouter(prefix="/api/packs", tags=["packs"])
PACK_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class PackAccepted(BaseModel):
    pack: str
    version: int
    author_token: str | None  # only on the upload that made the pack
    status: Literal["checking"] = "checking"
    report_url: str


class Finding(BaseModel):
    step: str
    status: Literal["ok", "mismatch", "error"]
    message: str
    file: str
    line: int | None


class Report(BaseModel):
    status: VersionStatus
    checks: list[Finding]


class VersionInfo(BaseModel):
    version: int
    title: str
    status: VersionStatus
    created_at: float
    report_url: str
    zip_url: str


class PackInfo(BaseModel):
    pack: str
    bundled: bool
    published: bool
    yours: bool
    versions: list[VersionInfo]


async def _readable(library: Library, pack: str, token: str | None) -> bool:
    """Whether the caller may see the pack: published, or theirs. False for an unknown pack."""
    made = await store.owner(library.db, pack)
    return made is not None and (made.published or (
        token is not None and tokens.same(token, made.author_digest)))


async def _own(library: Library, pack: str, request: Request) -> None:
    made = await store.owner(library.db, pack)
    if made is None:
        raise HTTPException(404, f"No uploaded pack '{pack}'.")
    token = bearer_token(request)
    if token is None:
        raise HTTPException(401, "Send the pack's author token: Authorization: Bearer <token>.")
    if not tokens.same(token, made.author_digest):
        raise HTTPException(403, "That token is not this pack's author's.")


def _version_info(v: store.Version) -> VersionInfo:
    base = f"/api/packs/{v.pack}/{v.version}"
    return VersionInfo(version=v.version, title=v.title, status=v.status,
                       created_at=v.created_at, report_url=f"{base}/report",
                       zip_url=f"{base}.zip")


@router.post("", status_code=202, response_model=PackAccepted,
             responses={403: {}, 409: {}, 413: {}, 422: {}})
async def create_pack_version(request: Request, library: LibraryDep,
                              file: Annotated[UploadFile, File()]) -> PackAccepted:
    """Upload a zipped pack: a new pack (its author token comes back), or a new version."""
    data = await file.read(library.limits.zip_bytes + 1)
    if len(data) > library.limits.zip_bytes:
        raise HTTPException(413, f"The zip is larger than "
                                 f"{library.limits.zip_bytes // (1024 * 1024)} MiB.")
    try:
        receipt = await library.upload(data, bearer_token(request))
    except UploadRefused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return PackAccepted(pack=receipt.pack, version=receipt.version,
                        author_token=receipt.author_token,
                        report_url=f"/api/packs/{receipt.pack}/{receipt.version}/report")


@router.get("", response_model=list[PackInfo])
async def read_packs(request: Request, library: LibraryDep) -> list[PackInfo]:
    """The bundled packs, the published ones, and the caller's own."""
    token = bearer_token(request)
    listed = [PackInfo(pack=p.id, bundled=True, published=True, yours=False, versions=[])
              for p in library.bundled().packs]
    for made in await store.visible(library.db, digest(token) if token else None):
        versions = [_version_info(v) for v in await store.versions(library.db, made.id)]
        listed.append(PackInfo(pack=made.id, bundled=False, published=made.published,
                               yours=token is not None and tokens.same(token, made.author_digest),
                               versions=versions))
    return listed


@router.get("/{pack}", response_model=PackInfo, responses={404: {}})
async def read_pack(pack: str, request: Request, library: LibraryDep) -> PackInfo:
    if not await _readable(library, pack, bearer_token(request)):
        raise HTTPException(404, f"No uploaded pack '{pack}' you can see.")
    made = await store.owner(library.db, pack)
    assert made is not None
    token = bearer_token(request)
    versions = [_version_info(v) for v in await store.versions(library.db, pack)]
    return PackInfo(pack=pack, bundled=False, published=made.published,
                    yours=token is not None and tokens.same(token, made.author_digest),
                    versions=versions)


async def readable_version(library: Library, pack: str, version: int,
                           token: str | None) -> store.Version:
    """A version the caller may see; 404 otherwise (unknown and private look alike)."""
    if not await _readable(library, pack, token):
        raise HTTPException(404, f"No uploaded pack '{pack}' you can see.")
    found = next((v for v in await store.versions(library.db, pack) if v.version == version),
                 None)
    if found is None:
        raise HTTPException(404, f"Pack '{pack}' has no version {version}.")
    return found


@router.get("/{pack}/{version}/report", response_model=Report, responses={404: {}})
async def read_report(pack: str, version: int, request: Request, library: LibraryDep) -> Any:
    found = await readable_version(library, pack, version, bearer_token(request))
    return {"status": found.status, "checks": found.report}


@router.get("/{pack}/{version}.zip", response_class=Response,
            responses={200: {"content": {"application/zip": {}}}, 404: {}})
async def read_pack_zip(pack: str, version: int, request: Request,
                        library: LibraryDep) -> Response:
    await readable_version(library, pack, version, bearer_token(request))
    return zip_download(library, pack, version)


def zip_download(library: Library, pack: str, version: int) -> Response:
    return Response(library.zip_bytes(pack, version), media_type="application/zip",
                    headers={"content-disposition":
                             f'attachment; filename="{pack}-{version}.zip"'})


@router.delete("/{pack}/{version}", status_code=204,
               responses={401: {}, 403: {}, 404: {}, 409: {}})
async def delete_pack_version(pack: str, version: int, request: Request,
                              library: LibraryDep) -> Response:
    await _own(library, pack, request)
    await readable_version(library, pack, version, bearer_token(request))
    used = await store.classes_using(library.db, str(VersionedPackId(pack, version)))
    if used:
        raise HTTPException(409, f"{used} class(es) use version {version}: it stays.")
    await library.delete(pack, version)
    return Response(status_code=204)


def _admin(request: Request, settings: SettingsDep) -> None:
    token = bearer_token(request)
    expected = settings.admin_token
    if expected is None:
        raise HTTPException(403, "No administrator token is set on this server.")
    if token is None or not tokens.equal(token, expected.get_secret_value()):
        raise HTTPException(403, "Publishing takes the administrator's token.")


@router.put("/{pack}/published", status_code=204, responses={403: {}, 404: {}})
async def update_published(pack: str, published: bool, request: Request, library: LibraryDep,
                           settings: SettingsDep) -> Response:
    """Administrator: put a pack in everyone's list (`?published=true`) or take it out."""
    _admin(request, settings)
    if await store.owner(library.db, pack) is None:
        raise HTTPException(404, f"No uploaded pack '{pack}'.")
    await store.set_published(library.db, pack, published)
    return Response(status_code=204)
