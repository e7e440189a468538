"""Headers and cookies every response gets, and the CSRF check.

The middleware gives each browser an anonymous learner id and a CSRF token
(both cookies, both HttpOnly) and sets a Content-Security-Policy with no
inline script: every script is a file under /static. State-changing page
routes depend on `verify_csrf`, a double submit: the token rendered into
the page (sent back by htmx as a header, or by a plain form as a field)
must equal the cookie.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from http.cookies import CookieError, SimpleCookie
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import tokens

LEARNER_COOKIE = "sbs_learner"  # app.deps.get_client_id reads it too
CSRF_COOKIE = "sbs_csrf"
CLASS_COOKIE = "sbs_class"  # a learner's student token in a live class
AUTHOR_COOKIE = "sbs_author"  # the token of the packs this browser uploaded
PORTER_COOKIE = "sbs_porter"  # the token of the models this browser ported


def teach_cookie(code: str) -> str:
    """The cookie that holds a class's instructor token in the instructor's browser."""
    return f"sbs_teach_{code}"


CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_YEAR_S = 365 * 24 * 3600

# CodeMirror injects its base styles as a <style> element; it gets the
# per-response nonce (style only: no script ever needs one). Style
# *attributes* are allowed: Chromium's own contenteditable editing writes
# them while CodeMirror catches up, lesson tables align columns with them,
# and an attribute can neither run script nor load from another origin here.
CSP = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self' 'nonce-{nonce}'; "
    "style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; "
    "font-src 'self'; "
    "connect-src 'self'; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_NO_COOKIES = ("/static/", "/api/")


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        new: list[tuple[str, str, str]] = []
        learner = cookies.get(LEARNER_COOKIE, "")
        csrf = cookies.get(CSRF_COOKIE, "")
        if not scope["path"].startswith(_NO_COOKIES):
            if not _valid(learner):
                learner = secrets.token_urlsafe(16)
                new.append((LEARNER_COOKIE, learner, "Lax"))
            if not _valid(csrf):
                csrf = secrets.token_urlsafe(24)
                new.append((CSRF_COOKIE, csrf, "Strict"))
        state = scope.setdefault("state", {})
        state["learner"] = learner
        state["csrf"] = csrf
        state["style_nonce"] = nonce = secrets.token_urlsafe(16)
        csp = CSP.format(nonce=nonce).encode()

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # how long the app took to start answering (the page budget is 20 ms)
                took_ms = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={took_ms:.1f}".encode()))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp))
                for name, value, same_site in new:
                    cookie = (f"{name}={value}; Path=/; Max-Age={_YEAR_S}; HttpOnly;"
                              f" SameSite={same_site}")
                    headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            with contextlib.suppress(CookieError):  # a malformed header is just ignored
                jar.load(value.decode("latin-1"))
    return {k: m.value for k, m in jar.items()}


def _valid(token: str) -> bool:
    return 16 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def learner_id(request: Request) -> str:
    return str(request.state.learner)


async def verify_csrf(request: Request) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = request.state.csrf
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if not expected or not sent or not tokens.equal(str(sent), str(expected)):
        raise HTTPException(403, "The form's security token is missing or stale; reload the page.")


LearnerDep = Annotated[str, Depends(learner_id)]
CsrfDep = Depends(verify_csrf)
