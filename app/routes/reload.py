"""The live preview's event stream: `reload` whenever the watched packs change."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from app.classes import streams
from app.deps import StateDep

router = APIRouter(tags=["preview"])


@router.get("/dev/reload", include_in_schema=False)
async def read_reload_events(request: Request, state: StateDep) -> Response:
    watcher = state.watcher
    if watcher is None:
        raise HTTPException(404, "The server is not watching its packs (serve --reload).")

    async def events() -> AsyncIterator[str]:
        yield ": watching\n\n"
        async for generation in watcher.changes():
            if await request.is_disconnected():
                return
            yield (f"event: reload\ndata: {generation}\n\n" if generation >= 0
                   else ": still watching\n\n")

    address = request.client.host if request.client else "unknown"
    return streams.respond(state.classes.streams, address, None, events())
