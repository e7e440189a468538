"""POST /api/runs: run one snippet in the sandbox."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ClientDep, PoolDep
from sandbox.protocol import RunRequest, RunResult

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("", response_model=RunResult)
async def create_run(request: RunRequest, pool: PoolDep, client: ClientDep) -> RunResult:
    return await pool.run(request, client)
