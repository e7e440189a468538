"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.packs.models import Catalog
from app.settings import Settings
from sandbox.fairqueue import Client
from sandbox.pool import Pool


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_pool(request: Request) -> Pool:
    return request.app.state.pool  # type: ignore[no-any-return]


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog  # type: ignore[no-any-return]


def get_client_id(request: Request) -> Client:
    """Who a run is queued for: the learner cookie, else the peer address, and that address.

    The cookie is the client's to choose, so the fair queue also caps by address.
    """
    address = request.client.host if request.client else "unknown"
    cookie = request.cookies.get("sbs_learner")
    learner = f"learner:{cookie[:64]}" if cookie else f"addr:{address}"
    return Client(learner=learner, address=address)


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
ClientDep = Annotated[Client, Depends(get_client_id)]
