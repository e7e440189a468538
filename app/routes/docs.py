"""/docs: Swagger UI from static/, so it works offline and under the app's own CSP.

FastAPI's default page loads Swagger UI from a CDN and starts it with an
inline script; the CSP (script-src 'self') blocks both. Here the assets are
the pinned copies under static/vendor/swagger-ui and the start-up script is
a file (static/docs.js).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.web.render import static_url

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def read_docs(request: Request) -> HTMLResponse:
    css = static_url("vendor/swagger-ui/swagger-ui.css")
    bundle = static_url("vendor/swagger-ui/swagger-ui-bundle.js")
    start = static_url("docs.js")
    return HTMLResponse(f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{request.app.title} · API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" href="{static_url('favicon.svg')}" type="image/svg+xml">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{request.app.openapi_url}"></div>
  <script src="{bundle}" defer></script>
  <script src="{start}" defer></script>
</body>
</html>
""")
