"""A framework-neutral drawing: nodes, edges and roots, written out as DOT.

The walkers in `torch_graph` and `tf_graph` fill a `Diagram`; `cap` keeps
the part nearest the outputs; `to_dot` styles it. The drawing is shown as an
image on light and dark pages alike, so nodes carry opaque light fills with
dark text and everything drawn straight on the background is a mid-tone grey.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Literal

NodeKind = Literal["param", "input", "op", "grad", "output", "update", "cut"]

INK = "#1f2328"  # text inside filled nodes
MID = "#8c959f"  # edges, cluster frames and labels: readable on white and on black
# kind: (shape, style, fill, border)
LOOKS: dict[str, tuple[str, str, str, str]] = {
    "param": ("box", "rounded,filled", "#a5d8ff", "#1c7ed6"),
    "input": ("box", "rounded,filled,dashed", "#f1f3f5", "#495057"),
    "op": ("box", "filled", "#e9ecef", "#868e96"),
    "grad": ("box", "filled", "#eebefa", "#ae3ec9"),
    "output": ("ellipse", "filled", "#ffd8a8", "#f76707"),
    "update": ("box", "rounded,filled,bold", "#a5d8ff", "#1c7ed6"),
    "cut": ("plaintext", "filled", "#fff3bf", MID),
}
STYLES = {
    kind: f'shape={shape}, style="{style}", fillcolor="{fill}", color="{border}"'
    for kind, (shape, style, fill, border) in LOOKS.items()
}
FILLS = {kind: look[2] for kind, look in LOOKS.items()}
DEFAULT_LEGEND: dict[str, str] = {
    "param": "parameter",
    "input": "input (no grad)",
    "op": "op",
    "grad": "gradient op",
    "output": "output",
    "update": "variable update",
    "cut": "more, not drawn",
}
MAX_LABEL_LINE = 48
MAX_STUBS = 30


@dataclasses.dataclass
class Node:
    label: str
    kind: NodeKind = "op"
    cluster: tuple[str, ...] = ()
    tooltip: str = ""


@dataclasses.dataclass
class Diagram:
    nodes: dict[str, Node] = dataclasses.field(default_factory=dict)
    edges: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    roots: list[str] = dataclasses.field(default_factory=list)  # outputs: distance 0
    legend: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_LEGEND))
    notes: list[str] = dataclasses.field(default_factory=list)
    truncated: bool = False
    serial: int = 0

    def add(self, node: Node) -> str:
        key = f"n{self.serial}"
        self.serial += 1
        self.nodes[key] = node
        return key

    def link(self, src: str, dst: str) -> None:
        self.edges.append((src, dst))


def cap(diagram: Diagram, max_nodes: int) -> Diagram:
    """Keep the `max_nodes` nodes nearest the roots (fewest edges away)."""
    total = len(diagram.nodes)
    if total <= max_nodes:
        return diagram
    inputs: dict[str, list[str]] = {}
    for src, dst in diagram.edges:
        inputs.setdefault(dst, []).append(src)
    keep: dict[str, None] = {}
    queue = deque(r for r in diagram.roots if r in diagram.nodes)
    while queue and len(keep) < max_nodes:
        key = queue.popleft()
        if key in keep:
            continue
        keep[key] = None
        queue.extend(s for s in inputs.get(key, ()) if s not in keep)
    for key in diagram.nodes:  # nodes that no root reaches come last
        if len(keep) >= max_nodes:
            break
        keep.setdefault(key, None)
    cut = [d for s, d in diagram.edges if d in keep and s not in keep]
    diagram.nodes = {k: diagram.nodes[k] for k in diagram.nodes if k in keep}
    diagram.edges = [(s, d) for s, d in diagram.edges if s in keep and d in keep]
    for dst in list(dict.fromkeys(cut))[:MAX_STUBS]:  # show where the drawing was cut
        diagram.link(diagram.add(Node("\N{MIDLINE HORIZONTAL ELLIPSIS}", "cut")), dst)
    diagram.truncated = True
    diagram.notes.append(f"truncated: {len(keep)} of {total} nodes shown (nearest the output)")
    return diagram


def quote(text: str) -> str:
    """A DOT double-quoted string that shows `text` literally, line by line."""
    lines = [_clip(line) for line in str(text).splitlines() or [""]]
    body = "\\n".join(_escape_line(line) for line in lines)
    return f'"{body}"'


def _clip(line: str, limit: int = MAX_LABEL_LINE) -> str:
    line = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in line)
    return line if len(line) <= limit else line[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _escape_line(line: str) -> str:
    # Backslashes start DOT escapes (\n, \N, \G); '&' starts an entity; '"' ends the string.
    return line.replace("\\", "\\\\").replace("&", "&amp;").replace('"', '\\"')


def _html(text: str, limit: int = MAX_LABEL_LINE) -> str:
    return (
        _clip(text, limit)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def _footer(diagram: Diagram) -> str:
    legend = diagram.legend | {k: v for k, v in DEFAULT_LEGEND.items() if k not in diagram.legend}
    present = {n.kind for n in diagram.nodes.values()}
    kinds = [k for k in legend if k in present]
    cells = "".join(
        f'<TD BGCOLOR="{FILLS[k]}"><FONT COLOR="{INK}">{_html(legend[k])}</FONT></TD>'
        for k in kinds
    )
    rows = f"<TR>{cells}</TR>" if cells else ""
    span = max(len(kinds), 1)
    for note in diagram.notes:
        text = f'<FONT COLOR="{INK}">{_html(note, 120)}</FONT>'
        rows += f'<TR><TD COLSPAN="{span}" BGCOLOR="#fff3bf">{text}</TD></TR>'
    if not rows:
        return ""
    return f'label=<<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="3">{rows}</TABLE>>;'


def _cluster_path(scope: tuple[str, ...], sizes: dict[tuple[str, ...], int]) -> tuple[str, ...]:
    """The scope cut where it would frame a single node: a frame is for grouping."""
    depth = 0
    while depth < len(scope) and sizes.get(scope[: depth + 1], 0) >= 2:
        depth += 1
    return scope[:depth]


def to_dot(diagram: Diagram) -> str:
    out = [
        "digraph G {",
        'graph [bgcolor="transparent", rankdir=TB, nodesep=0.25, ranksep=0.35, fontsize=10, '
        + f'fontname="Helvetica", fontcolor="{MID}", labelloc=b];',
        f'node [fontname="Helvetica", fontsize=10, fontcolor="{INK}", height=0.3, '
        + 'margin="0.08,0.03"];',
        f'edge [color="{MID}", arrowsize=0.6];',
        _footer(diagram),
    ]
    sizes: dict[tuple[str, ...], int] = {}
    for node in diagram.nodes.values():
        for depth in range(1, len(node.cluster) + 1):
            sizes[node.cluster[:depth]] = sizes.get(node.cluster[:depth], 0) + 1
    tree: dict[tuple[str, ...], list[str]] = {}
    for key, node in diagram.nodes.items():
        path = _cluster_path(node.cluster, sizes)
        tree.setdefault(path, []).append(key)
        for depth in range(len(path)):
            tree.setdefault(path[:depth], [])
    counter = iter(range(1_000_000))

    def emit(path: tuple[str, ...], indent: str) -> None:
        for key in tree.get(path, ()):
            node = diagram.nodes[key]
            out.append(f"{indent}{key} [label={quote(node.label)}, {STYLES[node.kind]}];")
        children = sorted(p for p in tree if len(p) == len(path) + 1 and p[: len(path)] == path)
        for child in children:
            out.append(f"{indent}subgraph cluster_{next(counter)} {{")
            out.append(
                f'{indent}  label={quote(child[-1])}; labeljust=l; style="rounded,dashed"; '
                f'color="{MID}"; fontcolor="{MID}";'
            )
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit((), "  ")
    seen: set[tuple[str, str]] = set()
    for edge in diagram.edges:
        if edge not in seen:
            seen.add(edge)
            out.append(f"  {edge[0]} -> {edge[1]};")
    out.append("}")
    return "\n".join(out)
