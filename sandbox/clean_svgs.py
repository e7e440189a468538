"""A result's SVGs cleaned again on the trusted side, after `messages.RunFinished` capped it.

The run draws its graphs and cleans their SVGs itself, but the run is the
attacker: the pool cleans every SVG again through the same strict
allowlist (`graphs.render.clean_svg`) before a result reaches a page.
"""

from __future__ import annotations

from sandbox.graphs.render import RenderError, clean_svg, note_svg
from sandbox.protocol import RunResult


def clean_svgs(result: RunResult) -> RunResult:
    for graph in result.graphs:
        try:
            graph.svg = clean_svg(graph.svg)
        except RenderError as exc:
            graph.svg = note_svg(f"drawing refused: {exc}")
            graph.nodes, graph.truncated = 0, True
    return result
