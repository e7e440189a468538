"""The authors' pages: upload a zipped pack, watch its check, list their packs and versions.

The browser keeps the author's token in a cookie, set by the first upload,
whose answer is the one page that shows it (to copy and keep). Pasted into
`/packs` in another browser, it signs that browser in. The JSON API under
/api/packs takes the same token as a Bearer header.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import LibraryDep
from app.packs.library import MIN_TOKEN_CHARS, UploadRefused
from app.packs.models import VersionedPackId
from app.routes.packs import readable_version, zip_download
from app.web.render import render
from app.web.security import AUTHOR_COOKIE, CsrfDep

router = APIRouter(tags=["author pages"], include_in_schema=False)
posts = APIRouter(tags=["author pages"], include_in_schema=False, dependencies=[CsrfDep])
AUTHOR_COOKIE_MAX_AGE_S = 400 * 24 * 3600
MAX_TOKEN_CHARS = 200
# What a cookie holds as it is: the tokens this server makes, and most an author may choose.
COOKIE_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+")


def _token(request: Request) -> str | None:
    return request.cookies.get(AUTHOR_COOKIE) or None


async def _packs_page(request: Request, library: LibraryDep, error: str | None = None,
                      status_code: int = 200, token: str | None = None,
                      **extra: Any) -> HTMLResponse:
    authored = await library.authored(token or _token(request))
    return render(request, "pages/packs.html", {
        "authored": authored, "error": error, "created": None, "sign_in_error": None,
        "zip_mib": library.limits.zip_bytes // (1024 * 1024), **extra}, status_code=status_code)


def _keep_token(response: Response, token: str) -> None:
    # Strict: a link from elsewhere never arrives with the author's rights.
    response.set_cookie(AUTHOR_COOKIE, token, max_age=AUTHOR_COOKIE_MAX_AGE_S, path="/",
                        httponly=True, samesite="strict")


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
    if not receipt.author_token or receipt.author_token == _token(request):
        return RedirectResponse(f"/packs/{receipt.pack}/{receipt.version}", status_code=303)
    # A new token: this answer is the only page that ever shows it. Not a redirect
    # to a page that could show it again; not kept by the browser's cache either.
    page = await _packs_page(request, library, status_code=201, token=receipt.author_token,
                             created=receipt)
    page.headers["cache-control"] = "no-store"
    _keep_token(page, receipt.author_token)
    return page


@posts.post("/packs/sign-in", response_class=HTMLResponse, response_model=None)
async def create_author_sign_in(request: Request, library: LibraryDep,
                                token: Annotated[str, Form()] = "",
                                ) -> HTMLResponse | RedirectResponse:
    """Another browser's author: their token, pasted, kept here once it owns a pack.
    A token that doesn't changes nothing, the cookie this browser holds included."""
    token = token.strip()
    problem, status = None, 403
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        problem, status = (f"An author token has {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} "
                           "characters: paste the one shown when your pack was made."), 422
    elif not await library.authored(token):
        problem = "No pack here has that author token. Nothing was changed."
    elif not COOKIE_SAFE.fullmatch(token):
        problem, status = ("That token can't be kept in a browser cookie: use it with the API "
                           "(Authorization: Bearer)."), 422
    if problem is not None:
        return await _packs_page(request, library, status_code=status, sign_in_error=problem)
    response = RedirectResponse("/packs", status_code=303)
    _keep_token(response, token)
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
        return await _packs_page(request, library, exc.detail, exc.status_code)
    pack_in_catalog = library.packs.get(str(VersionedPackId(pack, version)))
    return render(request, "pages/pack_version.html", {
        "version": found, "lessons": pack_in_catalog.lessons if pack_in_catalog else []},
        partial="partials/pack_report.html")
