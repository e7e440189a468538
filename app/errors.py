"""Bad input gets a clear 4xx: oversize bodies, malformed JSON, a full queue, a refusal."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.classes.errors import ClassRefused
from app.web.port_views import FORM_DEFAULTS
from app.web.render import render
from sandbox.fairqueue import QueueFull

MAX_BODY_BYTES = 1024 * 1024  # two 64 KiB snippets with room for JSON escaping
ENVELOPE_BYTES = 64 * 1024  # a multipart upload's boundaries, headers and small fields
# A pack's zip (UnpackLimits.zip_bytes) with room for its multipart envelope.
UPLOAD_BODY_BYTES = 4 * 1024 * 1024 + ENVELOPE_BYTES
UPLOAD_PATHS = frozenset({"/api/packs", "/packs"})  # POST only: the two upload forms
PORT_PATHS = frozenset({"/api/ports", "/port"})  # POST only: a model file to port


class BodySizeLimit:
    """Refuse a request body over its route's limit with 413, before anyone parses it:
    as soon as the bytes received pass it, whatever the request declared."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES,
                 upload_bytes: int = UPLOAD_BODY_BYTES, port_upload_mb: int = 300,
                 port_inputs_mb: int = 0) -> None:
        self.app, self.default_bytes, self.upload_bytes = app, max_bytes, upload_bytes
        self.port_upload_mb, self.port_inputs_mb = port_upload_mb, port_inputs_mb

    def limit(self, scope: Scope) -> tuple[int, str]:
        """The route's limit in bytes, and what its refusal says."""
        path = scope["path"].rstrip("/") if scope["method"] == "POST" else ""
        if path in PORT_PATHS:  # a model and, optionally, the inputs to prove it on
            return ((self.port_upload_mb + self.port_inputs_mb) * 2**20 + ENVELOPE_BYTES,
                    f"The model file is larger than {self.port_upload_mb} MiB "
                    f"(setting port_upload_mb), or the inputs file than "
                    f"{self.port_inputs_mb} MiB (port_inputs_mb).")
        limit = self.upload_bytes if path in UPLOAD_PATHS else self.default_bytes
        return limit, f"request body is larger than {limit // 1024} KiB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, refusal = self.limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(refusal, scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(refusal, scope, receive, send)

    async def _too_large(self, refusal: str, scope: Scope, receive: Receive,
                         send: Send) -> None:
        response: Response = JSONResponse({"detail": refusal}, 413)
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/port":
            # the page's own form, refused in place (what was typed is in the refused body)
            response = render(Request(scope), "pages/port.html", {
                "error": refusal, "form": FORM_DEFAULTS, "mine": [],
                "upload_mib": self.port_upload_mb, "inputs_mib": self.port_inputs_mb},
                status_code=413)
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _brief(error: dict[str, Any]) -> dict[str, Any]:
    # Never echo the input back: it may be 64 KiB of code.
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return {"field": where or "body", "message": error.get("msg", "invalid")}


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_brief(e) for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse({"detail": summary or "invalid request", "errors": errors[:20]}, 422)


async def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueueFull)
    return JSONResponse({"detail": str(exc), "retry_after_s": exc.retry_after_s}, 429,
                        headers={"Retry-After": str(exc.retry_after_s)})


_HEADINGS = {401: "Instructors only", 403: "Not yours to see", 404: "No such class",
             409: "The class can't take that", 429: "Slow down"}


async def _class_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClassRefused)
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": exc.message}, exc.status_code, headers=headers)
    return render(request, "pages/class_error.html", {
        "heading": _HEADINGS.get(exc.status_code, "Live class"), "message": exc.message},
        status_code=exc.status_code, headers=headers)


def install(app: FastAPI, port_upload_mb: int, port_inputs_mb: int = 0) -> None:
    app.add_middleware(BodySizeLimit, port_upload_mb=port_upload_mb,
                       port_inputs_mb=port_inputs_mb)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(ClassRefused, _class_refused)
