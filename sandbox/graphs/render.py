"""DOT to an SVG that is safe to put in a page.

`dot` runs as a child with a deadline: layouts of some graphs grow far faster
than their size, so a drawing that is not ready in time is dropped, never
waited for. Its output is parsed and written out again through an allowlist
of SVG elements and attributes, so nothing that can run or fetch survives,
whatever a snippet named its tensors.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from sandbox.graphs.diagram import MID, Diagram, cap, to_dot

SVG_NS = "http://www.w3.org/2000/svg"
NOTE_COLUMNS = 72
ELEMENTS = {"svg", "g", "title", "polygon", "polyline", "path", "ellipse", "text", "rect", "line"}
ATTRIBUTES = {
    "width", "height", "viewBox", "transform", "points", "d", "cx", "cy", "rx", "ry", "x", "y",
    "x1", "y1", "x2", "y2", "fill", "stroke", "stroke-width", "stroke-dasharray", "stroke-opacity",
    "fill-opacity", "font-family", "font-size", "font-weight", "font-style", "text-anchor", "class",
}  # fmt: skip

# Set once on the root instead of on every <text>: about a third of the bytes.
INHERITED = {"font-family": "Helvetica,sans-Serif", "font-size": "10.00"}


@dataclasses.dataclass
class Rendered:
    svg: str
    nodes: int
    truncated: bool


class RenderError(Exception):
    pass


def render(diagram: Diagram, *, max_nodes: int = 300, timeout_s: float = 3.0) -> Rendered:
    """Cap, lay out and clean a diagram; a layout that runs out of time comes back as a note."""
    diagram = cap(diagram, max_nodes)
    tooltips = {key: node.tooltip for key, node in diagram.nodes.items() if node.tooltip}
    try:
        raw = run_dot(to_dot(diagram), timeout_s)
    except subprocess.TimeoutExpired:
        note = f"render timed out after {timeout_s:g} s ({len(diagram.nodes)} nodes)"
        return Rendered(note_svg(note), 0, True)
    shown = sum(1 for node in diagram.nodes.values() if node.kind != "cut")
    return Rendered(clean_svg(raw, tooltips or {}), shown, diagram.truncated)


def run_dot(dot_text: str, timeout_s: float) -> str:
    """`dot -Tsvg`; on timeout the child is killed and reaped before this raises."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError("Graphviz 'dot' is not installed")
    with subprocess.Popen(
        [exe, "-Tsvg"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(dot_text.encode("utf-8"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise RenderError(f"dot failed: {err.decode('utf-8', 'replace')[:300]}")
    return out.decode("utf-8", "replace")


def clean_svg(raw: str, tooltips: dict[str, str] | None = None) -> str:
    """Rewrite an SVG through the allowlist; prolog, doctype, comments and ids go.

    With `tooltips`, dot's node titles are replaced by them (titles not in it
    go); without, titles are kept as text. RenderError for anything that is
    not a plain SVG document.
    """
    if "<!ENTITY" in raw:
        raise RenderError("entity declarations are not allowed")
    try:
        root = ET.fromstring(raw)
        if _local(root.tag) != "svg":
            raise RenderError("not an SVG document")
        parts: list[str] = []
        _write(root, parts, tooltips, top=True)
    except (ET.ParseError, RecursionError) as exc:
        raise RenderError(f"not a well-formed SVG: {type(exc).__name__}") from None
    return "".join(parts)


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""  # comments and processing instructions
    ns, _, name = tag.rpartition("}")
    return name if ns in ("", "{" + SVG_NS) else ""


def _write(
    el: ET.Element, parts: list[str], tooltips: dict[str, str] | None, *, top: bool = False
) -> None:
    name = _local(el.tag)
    if name not in ELEMENTS:
        return
    text = el.text or ""
    if name == "title" and tooltips is not None:
        # dot titles nodes with their DOT name (n12); show the node's own tooltip instead.
        if text not in tooltips:
            return
        text = tooltips[text]
    attrs = [
        (k, v)
        for k, v in el.attrib.items()
        if k in ATTRIBUTES and _harmless(v) and INHERITED.get(k) != v
    ]
    if top:
        attrs += [("xmlns", SVG_NS), ("role", "img"), *INHERITED.items()]
    parts.append(f"<{name}" + "".join(f" {k}={quoteattr(v)}" for k, v in attrs) + ">")
    if text.strip():
        parts.append(escape(text))
    for child in el:
        _write(child, parts, tooltips)
    parts.append(f"</{name}>")


def _harmless(value: str) -> bool:
    lowered = value.lower()
    return "url(" not in lowered and "script" not in lowered and "&" not in lowered


def note_svg(text: str) -> str:
    """A few lines of text for 'nothing to draw' and 'gave up' cases."""
    lines = textwrap.wrap(text, NOTE_COLUMNS) or [""]
    width = 12 + 7 * max(len(line) for line in lines)
    height = 10 + 18 * len(lines)
    body = "".join(
        f'<text x="6" y="{18 * (i + 1)}">{escape(line)}</text>' for i, line in enumerate(lines)
    )
    return (
        f'<svg xmlns="{SVG_NS}" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><g fill="{MID}" font-family="Helvetica,sans-serif" '
        f'font-size="13">{body}</g></svg>'
    )
