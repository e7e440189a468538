"""POST /api/runs: run one snippet in the sandbox, through the run pipeline."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ClientDep, RunsDep, SeatDep
from sandbox.protocol import RunRequest, RunResult

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("", response_model=RunResult, responses={
    423: {"description": "runs are paused by the instructor of the learner's class"},
    429: {"description": "the queue is full, or the class learner has a run in flight"}})
async def create_run(request: RunRequest, runs: RunsDep, client: ClientDep,
                     seat: SeatDep) -> RunResult:
    """With a class learner's Bearer token (or class cookie) the run counts in that class.
    A lesson's wish for a GPU falls back to a CPU while no GPU worker serves."""
    return await runs.api_run(request, client, seat)
