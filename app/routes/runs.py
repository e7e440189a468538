"""POST /api/runs: run one snippet in the sandbox."""

from __future__ import annotations

from fastapi import APIRouter

from app.classes import outcomes
from app.deps import ClassesDep, ClientDep, PoolDep, SeatDep
from sandbox.protocol import RunRequest, RunResult

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("", response_model=RunResult, responses={
    423: {"description": "runs are paused by the instructor of the learner's class"},
    429: {"description": "the queue is full, or the class learner has a run in flight"}})
async def create_run(request: RunRequest, pool: PoolDep, client: ClientDep, seat: SeatDep,
                     classes: ClassesDep) -> RunResult:
    """With a class learner's Bearer token (or class cookie) the run counts in that class."""
    return await classes.track(seat, lambda: pool.run(request, client),
                               lambda result: outcomes.of_run(result, request.code))
