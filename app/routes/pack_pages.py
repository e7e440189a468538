"""The authors' pages: upload a zipped pack, watch its check, list their packs and versions.

The browser keeps the author's token in a cookie, set by the first upload;
the JSON API under /api/packs takes the same token as a Bearer header.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import LibraryDep
from app.packs.library import UploadRefused
from app.packs.models import VersionedPackId
from app.routes.packs import readable_version, zip_download
from app.web.render import render
from app.web.security import AUTHOR_COOKIE, CsrfDep

router = APIRouter(tags=["author pages"], include_in_schema=False)
posts = APIRouter(tags=["author pages"], include_in_schema=False, dependencies=[CsrfDep])
AUTHOR_COOKIE_MAX_AGE_S = 400 * 24 * 3600


def _token(request: Request) -> str | None:
    return request.cookies.get(AUTHOR_COOKIE) or None


async def _packs_page(request: Request, library: LibraryDep, error: str | None = None,
                      status_code: int = 200) -> HTMLResponse:
    authored = await library.authored(_token(request))
    return render(request, "pages/packs.html", {
        "authored": authored, "error": error,
        "zip_mib": library.limits.zip_bytes // (1024 * 1024)}, status_code=status_code)


@router.get("/packs", response_class=HTMLResponse)
async def read_packs_page(request: Request, library: LibraryDep) -> HTMLResponse:
    return await _packs_page(request, library)


@posts.post("/packs", response_class=HTMLResponse, response_model=None)
async def create_pack_page(request: Request, library: LibraryDep,
                           file: Annotated[UploadFile, File()]) -> HTMLResponse | RedirectResponse:
    data = await file.read(library.limits.zip_bytes + 1)
    if len(data) > library.limits.zip_bytes:
        return await _packs_page(request, library, f"The zip is larger than "
                                 f"{library.limits.zip_bytes // (1024 * 1024)} MiB.", 413)
    try:
        receipt = await library.upload(data, _token(request))
    except UploadRefused as exc:
        return await _packs_page(request, library, exc.detail, exc.status)
    response = RedirectResponse(f"/packs/{receipt.pack}/{receipt.version}", status_code=303)
    if receipt.author_token and receipt.author_token != _token(request):
        # Strict: a link from elsewhere never arrives with the author's rights.
        response.set_cookie(AUTHOR_COOKIE, receipt.author_token,
                            max_age=AUTHOR_COOKIE_MAX_AGE_S, path="/", httponly=True,
                            samesite="strict")
    return response


@router.get("/packs/{pack}/{version}.zip", response_model=None)
async def read_pack_version_zip(request: Request, pack: str, version: int,
                                library: LibraryDep) -> Response:
    await readable_version(library, pack, version, _token(request))
    return zip_download(library, pack, version)


@router.get("/packs/{pack}/{version}", response_class=HTMLResponse)
async def read_pack_version_page(request: Request, pack: str, version: int,
                                 library: LibraryDep) -> HTMLResponse:
    try:
        found = await readable_version(library, pack, version, _token(request))
    except HTTPException as exc:
        return render(request, "pages/packs.html", {
            "authored": await library.authored(_token(request)), "error": exc.detail,
            "zip_mib": library.limits.zip_bytes // (1024 * 1024)}, status_code=exc.status_code)
    pack_in_catalog = library.packs.get(str(VersionedPackId(pack, version)))
    return render(request, "pages/pack_version.html", {
        "version": found, "lessons": pack_in_catalog.lessons if pack_in_catalog else []},
        partial="partials/pack_report.html")
