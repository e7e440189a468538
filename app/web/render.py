"""The one place that decides between a full page and a fragment.

An htmx request (HX-Request, not boosted) gets the partial that replaces
the element it targets; anything else gets the whole page, which includes
the same partial, so a browser without JavaScript sees the same result.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from app.packs.render import highlight_python, render_markdown
from app.pipeline.requests import TIMING_REPEAT
from app.resources import STATIC, TEMPLATES
from app.web import names, run_text, views


@functools.cache
def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=TEMPLATES)
    t.env.globals["static"] = static_url
    t.env.filters["markdown"] = render_markdown
    t.env.filters["python"] = highlight_python
    t.env.filters["svg_data_uri"] = views.svg_data_uri
    t.env.filters["tidy_paths"] = run_text.tidy_paths
    t.env.filters["ms"] = views.ms
    t.env.globals.update(status_text=views.STATUS_TEXT, labels=views.LABELS,
                         timing_chart=views.timing_chart, timing_repeat=TIMING_REPEAT,
                         split_stderr=run_text.split_stderr, did_you_mean=names.did_you_mean)
    t.env.trim_blocks = True
    t.env.lstrip_blocks = True
    return t


@functools.cache
def static_url(path: str) -> str:
    """/static URL with a content hash, so a rebuilt bundle is never stale."""
    digest = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:10]
    return f"/static/{path}?v={digest}"


def is_fragment(request: Request) -> bool:
    return (request.headers.get("hx-request") == "true"
            and request.headers.get("hx-boosted") != "true")


def render(request: Request, page: str, context: dict[str, Any], *,
           partial: str | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    name = partial if partial and is_fragment(request) else page
    context = {"csrf_token": request.state.csrf, "style_nonce": request.state.style_nonce,
               "insecure": _insecure(request), **_preview(request),
               "run_timeout_s": request.app.state.sidebyside.settings.run_timeout_s, **context}
    return templates().TemplateResponse(request, name, context, status_code=status_code,
                                        headers=headers)


def _preview(request: Request) -> dict[str, Any]:
    """In an author's live preview: the page refreshes itself and shows every pack error."""
    state = request.app.state.sidebyside  # app.state.AppState (the app's composition root)
    if state.watcher is None:
        return {"reload": False}
    folder = f"{state.settings.packs_dir.resolve()}/"
    return {"reload": True, "pack_errors": [e.replace(folder, "") for e in state.catalog.errors]}


def _insecure(request: Request) -> bool:
    """Runs unfenced here (--insecure-no-sandbox), or on a registered remote worker."""
    state = request.app.state.sidebyside
    return bool(state.settings.insecure_no_sandbox or state.executor.stats().insecure)


def fragment(request: Request, name: str, context: dict[str, Any]) -> str:
    """A partial as a string, for a server-sent event (the same file a swap would return)."""
    context = {"request": request, "csrf_token": request.state.csrf,
               "style_nonce": request.state.style_nonce, **context}
    return templates().get_template(name).render(context)
