"""Run a TensorFlow snippet and a PyTorch snippet at once, and compare them."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from app.compare import Comparison, compare_results
from sandbox.executor import Executor
from sandbox.fairqueue import Client
from sandbox.protocol import RunRequest, RunResult


class PairResult(BaseModel):
    tensorflow: RunResult
    pytorch: RunResult
    comparison: Comparison


async def run_pair(pool: Executor, tensorflow: str, pytorch: str, *, names: list[str],
                   rtol: float = 1e-5, atol: float = 1e-6,
                   tensorflow_exprs: dict[str, str] | None = None,
                   pytorch_exprs: dict[str, str] | None = None, client: Client,
                   graph: bool = False, repeat: int = 1,
                   draw: dict[str, str] | None = None,
                   timeout_s: float | None = None) -> PairResult:
    """Both sides run concurrently; `*_exprs` map a compared name to an expression."""
    draw = draw or {}

    def request(framework: str, code: str, exprs: dict[str, str] | None) -> RunRequest:
        capture = {name: (exprs or {}).get(name, name) for name in names}
        return RunRequest(framework=framework, code=code, capture=capture,  # type: ignore[arg-type]
                          graph=graph, repeat=repeat, draw=draw.get(framework),
                          timeout_s=timeout_s)

    tf_result, pt_result = await asyncio.gather(
        pool.run(request("tensorflow", tensorflow, tensorflow_exprs), client),
        pool.run(request("pytorch", pytorch, pytorch_exprs), client),
    )
    comparison = compare_results(tf_result, pt_result, names, rtol, atol)
    return PairResult(tensorflow=tf_result, pytorch=pt_result, comparison=comparison)
