"""Keras models ported to PyTorch: upload one, follow its port, download its files.

A port is its creator's: the token its first answer gives (send it back as
`Authorization: Bearer`; send one you hold to keep your ports under one
token), or the `/port` page's cookie. Anyone else's port id answers 404.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from app import tokens
from app.deps import CatalogDep, PortsDep, SettingsDep, bearer_token
from app.ports.orders import form_order, json_order
from app.ports.service import PortRefused, PortService
from app.ports.uploads import UploadRefused, check_inputs_file, check_model_file
from app.settings import Settings
from app.store.ports import PortRecord
from app.web.port_views import MEDIA_TYPES, PortDetail, detail, download_name
from app.web.security import PORTER_COOKIE
from sandbox.executor import PORT_FILES
from sandbox.fairqueue import Client
from sandbox.protocol import PortOrder

router = APIRouter(prefix="/api/ports", tags=["ports"])
MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 22, 200
FORM_LIMITS = {"max_files": 2, "max_fields": 16}  # the model and the inputs
# The body is read by hand (a file or a snippet); the docs still say what it may be.
BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": ".keras or .h5"},
        "layout": {"type": "string", "enum": ["nhwc", "nchw"], "default": "nhwc"},
        "atol": {"type": "number", "default": 1e-5},
        "rtol": {"type": "number", "default": 1e-4},
        "onnx": {"type": "boolean", "default": False},
        "inputs": {"type": "string", "format": "binary",
                   "description": "optional: .npy (one input) or .npz (arrays named after "
                                  "the inputs, or arr_0, arr_1...) to prove the port on too"}}}},
    "application/json": {"schema": PortOrder.model_json_schema()}}}}


class PortAccepted(BaseModel):
    id: str
    status: Literal["porting"] = "porting"
    report_url: str
    token: str  # the port's owner: send it as `Authorization: Bearer` to read it


def port_client(request: Request) -> Client:
    """Who a port is queued for: the learner cookie, else the address (never a Bearer
    token: the fair queue's caps are per learner and per address)."""
    address = request.client.host if request.client else "unknown"
    cookie = request.cookies.get("sbs_learner")
    return Client(learner=f"learner:{cookie[:64]}" if cookie else f"addr:{address}",
                  address=address)


def owner_token(request: Request) -> str | None:
    """Whoever asks: a Bearer token, else the `/port` page's cookie."""
    return bearer_token(request) or request.cookies.get(PORTER_COOKIE) or None


async def readable_port(ports: PortService, port_id: str, token: str | None) -> PortRecord:
    """The caller's port; 404 for anyone else's (unknown and private look alike)."""
    record = await ports.record(port_id) if len(port_id) <= 64 else None
    if record is None or token is None or not tokens.same(token, record.owner_digest):
        raise HTTPException(404, f"No port '{port_id[:64]}' of yours.")
    return record


async def start_port(ports: PortService, order: PortOrder, upload: UploadFile | None,
                     inputs: UploadFile | None, source: str, token: str, client: Client,
                     settings: Settings) -> str:
    """Check the uploads (size and type only), then start the port; refusals as 4xx/503."""
    if upload is not None:
        assert order.suffix is not None, "a form's file makes an order with its filename"
        await asyncio.to_thread(check_model_file, upload.file, order.suffix,
                                settings.port_upload_mb * 2**20)
    if inputs is not None:
        assert order.inputs is not None, "a form's inputs make an order with their format"
        await asyncio.to_thread(check_inputs_file, inputs.file, order.inputs,
                                settings.port_inputs_mb * 2**20)
    return await ports.start(order, upload.file if upload else None, source,
                             tokens.digest(token), client, inputs.file if inputs else None)


def refused(exc: UploadRefused | PortRefused) -> HTTPException:
    retry = getattr(exc, "retry_after_s", None)
    return HTTPException(exc.status, exc.detail,
                         headers={"Retry-After": str(retry)} if retry else None)


@router.post("", status_code=202, response_model=PortAccepted, openapi_extra=BODY,
             responses={401: {}, 413: {}, 415: {}, 422: {}, 429: {}, 503: {}})
async def create_port(request: Request, ports: PortsDep,
                      settings: SettingsDep) -> PortAccepted:
    """Port a Keras model: multipart `file` (`.keras` or `.h5`) with optional `layout`
    (`nhwc`|`nchw`), `atol`, `rtol`, `onnx`, and `inputs` (`.npy` or `.npz`: your own
    inputs, proved beside the seeded ones); or JSON `{"code", ...}`, a snippet that
    builds the model. The port runs in the background: follow `report_url`."""
    token = bearer_token(request)
    if token is not None and not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        raise HTTPException(401, f"A port token has {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} "
                                 "characters: leave it out to be given one.")
    token = token or tokens.new_token()
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            async with request.form(**FORM_LIMITS) as form:
                order, upload, inputs = form_order(form)
                source = order.filename or ""
                port_id = await start_port(ports, order, upload, inputs, source, token,
                                           port_client(request), settings)
        elif content_type.startswith("application/json"):
            order = json_order(await request.body())
            port_id = await start_port(ports, order, None, None, "", token,
                                       port_client(request), settings)
        else:
            raise UploadRefused(415, "Send multipart form data with a model `file`, or JSON "
                                     "with a snippet's `code`.")
    except (UploadRefused, PortRefused) as exc:
        raise refused(exc) from None
    return PortAccepted(id=port_id, report_url=f"/api/ports/{port_id}", token=token)


@router.get("/{port_id}", response_model=PortDetail, responses={404: {}})
async def read_port(port_id: str, request: Request, ports: PortsDep,
                    catalog: CatalogDep) -> PortDetail:
    record = await readable_port(ports, port_id, owner_token(request))
    return detail(record, catalog, ports.kept(port_id))


@router.get("/{port_id}/{name}", response_class=FileResponse,
            responses={200: {"content": {t: {} for t in set(MEDIA_TYPES.values())}},
                       404: {}})
async def read_port_file(port_id: str, name: str, request: Request,
                         ports: PortsDep) -> Response:
    """One of a finished port's files: `model.py`, `weights.safetensors`,
    `port_report.json`, `check.py`, or `port.zip` (all four)."""
    record = await readable_port(ports, port_id, owner_token(request))
    path = ports.file(port_id, name) if name in PORT_FILES else None
    if path is None:
        raise HTTPException(404, f"This port has no file '{name[:64]}'"
                                 + (" yet." if name in PORT_FILES else "."))
    class_name = str((record.report or {}).get("class_name", ""))
    return FileResponse(path, media_type=MEDIA_TYPES[name],
                        filename=download_name(name, class_name),
                        headers={"cache-control": "private, no-store"})

