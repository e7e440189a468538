"""POST /api/pairs: run a TensorFlow and a PyTorch snippet side by side and compare them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.deps import ClientDep, RunsDep, SeatDep
from app.pipeline.requests import RunOptions, build_request
from app.pipeline.work import ApiPair, PairOutcome
from sandbox.protocol import MAX_REPEAT, Framework, RunRequest, check_code

router = APIRouter(prefix="/api/pairs", tags=["pairs"])

Name = Annotated[str, Field(min_length=1, max_length=200)]


class PairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tensorflow: str
    pytorch: str
    compare: list[Name] = Field(default_factory=list, max_length=32)
    rtol: float = Field(1e-5, ge=0)
    atol: float = Field(1e-6, ge=0)
    # per side, name -> expression, where the two layouts differ (e.g. "linear.weight.T")
    expressions: dict[str, dict[Name, str]] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0)
    graph: bool = False
    repeat: int = Field(1, ge=1, le=MAX_REPEAT)

    @field_validator("tensorflow", "pytorch")
    @classmethod
    def _code_fits(cls, code: str) -> str:
        return check_code(code)

    @field_validator("expressions")
    @classmethod
    def _known_sides(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = set(value) - {"tensorflow", "pytorch"}
        if unknown:
            raise ValueError(f"expressions: unknown framework {sorted(unknown)}")
        return value


@router.post("", response_model=PairOutcome, responses={
    423: {"description": "runs are paused by the instructor of the learner's class"},
    429: {"description": "the queue is full, or the class learner has a run in flight"}})
async def create_pair(request: PairRequest, runs: RunsDep, client: ClientDep,
                      seat: SeatDep) -> PairOutcome:
    """With a class learner's Bearer token (or class cookie) the pair counts in that class."""
    def side(framework: Framework, code: str) -> RunRequest:
        exprs = request.expressions.get(framework, {})
        return build_request(framework, code, options=RunOptions(
            capture={name: exprs.get(name, name) for name in request.compare},
            graph=request.graph, repeat=request.repeat, timeout_s=request.timeout_s))

    work = ApiPair(side("tensorflow", request.tensorflow), side("pytorch", request.pytorch),
                   request.compare, request.rtol, request.atol)
    return await runs.api_pair_tracked(work, client, seat)
