"""The porter's pages: `/port` (upload a model or paste a snippet) and a port's result.

The browser keeps the porter's token in a cookie, set by its first port, so
its ports are its own; the API takes the same token as a Bearer header.
While a port runs, its page waits for the result to be pushed
(`/ports/{id}/events`, the same stream and script a slow run's panel uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import tokens
from app.classes import streams
from app.deps import CatalogDep, ClassesDep, PortsDep, SettingsDep
from app.ports.orders import form_order, options_of
from app.ports.service import PortRefused, PortService
from app.ports.uploads import UploadRefused
from app.routes.ports import FORM_LIMITS, port_client, readable_port, start_port
from app.store import ports as store
from app.web.port_views import FORM_DEFAULTS, detail
from app.web.render import fragment, render
from app.web.security import PORTER_COOKIE, CsrfDep, LearnerDep

router = APIRouter(tags=["porter pages"], include_in_schema=False)
posts = APIRouter(tags=["porter pages"], include_in_schema=False, dependencies=[CsrfDep])
PORTER_COOKIE_MAX_AGE_S = 400 * 24 * 3600


def _token(request: Request) -> str | None:
    token = request.cookies.get(PORTER_COOKIE) or None
    return token if token is not None and len(token) <= 200 else None


async def _form_page(request: Request, ports: PortService, settings: SettingsDep,
                     error: str | None = None, status_code: int = 200,
                     kept: dict[str, Any] | None = None) -> HTMLResponse:
    token = _token(request)
    mine = await store.owned(ports.db, tokens.digest(token)) if token else []
    return render(request, "pages/port.html", {
        "error": error, "form": {**FORM_DEFAULTS, **(kept or {})}, "mine": mine,
        "upload_mib": settings.port_upload_mb, "inputs_mib": settings.port_inputs_mb},
        status_code=status_code)


@router.get("/port", response_class=HTMLResponse)
async def read_port_form(request: Request, ports: PortsDep,
                         settings: SettingsDep) -> HTMLResponse:
    return await _form_page(request, ports, settings)


@posts.post("/port", response_class=HTMLResponse, response_model=None)
async def create_port_page(request: Request, ports: PortsDep,
                           settings: SettingsDep) -> HTMLResponse | RedirectResponse:
    token = _token(request) or tokens.new_token()
    async with request.form(**FORM_LIMITS) as form:
        kept: dict[str, Any] = {**options_of(form)}
        code = form.get("code")
        kept["code"] = code if isinstance(code, str) else ""
        try:
            order, upload, inputs = form_order(form)
            port_id = await start_port(ports, order, upload, inputs, order.filename or "",
                                       token, port_client(request), settings)
        except (UploadRefused, PortRefused) as exc:
            page = await _form_page(request, ports, settings, exc.detail, exc.status, kept)
            if isinstance(exc, PortRefused) and exc.retry_after_s:
                page.headers["retry-after"] = str(exc.retry_after_s)
            return page
    response = RedirectResponse(f"/ports/{port_id}", status_code=303)
    if token != _token(request):
        # Strict: a link from elsewhere never arrives with the porter's rights.
        response.set_cookie(PORTER_COOKIE, token, max_age=PORTER_COOKIE_MAX_AGE_S, path="/",
                            httponly=True, samesite="strict")
    return response


async def _result(request: Request, port_id: str, ports: PortService,
                  catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    record = await readable_port(ports, port_id, _token(request))
    return {"port": detail(record, catalog, ports.kept(port_id)),
            "limit_s": int(settings.port_timeout_s)}


@router.get("/ports/{port_id}", response_class=HTMLResponse)
async def read_port_page(request: Request, port_id: str, ports: PortsDep, catalog: CatalogDep,
                         settings: SettingsDep) -> HTMLResponse:
    try:
        context = await _result(request, port_id, ports, catalog, settings)
    except HTTPException as exc:
        return await _form_page(request, ports, settings, str(exc.detail), exc.status_code)
    return render(request, "pages/port_result.html", context,
                  partial="partials/port_result.html")


@router.get("/ports/{port_id}/events")
async def read_port_events(request: Request, port_id: str, ports: PortsDep,
                           catalog: CatalogDep, settings: SettingsDep, learner: LearnerDep,
                           classes: ClassesDep) -> Response:
    """One event, `done`, carrying the result partial, the moment the port ends;
    comments keep the stream alive meanwhile."""
    await readable_port(ports, port_id, _token(request))
    address = request.client.host if request.client else "unknown"

    async def events() -> AsyncIterator[str]:
        while True:
            if await ports.wait(port_id, streams.KEEPALIVE_S):
                context = await _result(request, port_id, ports, catalog, settings)
                if context["port"].status != "porting":
                    yield streams.encode("done", fragment(request, "partials/port_result.html",
                                                          context))
                    return
                # no task runs it and no result came: a "done" would only bring the page
                # back here at once, so the stream stays open and quiet instead
                await asyncio.sleep(streams.KEEPALIVE_S)
            yield ": porting\n\n"

    return streams.respond(classes.streams, address, f"learner:{learner}", events())
