"""Parse one lesson file: YAML front matter, then one step per `##` heading.

The Markdown is tokenised by markdown-it-py, whose block tokens carry line
maps; those give every step, block and snippet its line in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, Field

from app.packs.models import Compare, Exercise, GraphSpec, Lesson, Level, Snippet, Step
from app.packs.source import PackError, combined, line_of, read_text, read_yaml, validate
from sandbox.protocol import MAX_CODE_BYTES, TIMED_MARKER, Device

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"

# block kind -> the word that must come before it in the fence's info string
BLOCK_LANGS: dict[str, str | None] = {
    "tensorflow": "python", "pytorch": "python", "compare": "yaml", "graph": "yaml",
    "pitfall": None, "exercise": "yaml", "starter": "python", "solution": "python",
}

_MD = MarkdownIt("commonmark").enable("table")


class FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    level: Level
    minutes: int = Field(gt=0)
    prerequisites: list[str] = Field(default_factory=list)
    device: Device = "cpu"  # gpu: its runs go to a GPU worker when one is registered
    # Wall-time limit of each of its runs, for steps that load heavy libraries
    # (an exporter, a second process); the server's run_max_timeout_s caps it.
    timeout_s: float | None = Field(None, gt=0)


@dataclass
class _Block:
    kind: str
    text: str
    line: int  # first content line, in the file


@dataclass
class _Section:
    title: str
    line: int  # the heading's line in the file; 0 for the introduction
    start: int  # first body line (0-based) of the section
    blocks: dict[str, _Block] = field(default_factory=dict)


def parse_lesson(file: Path, pack_id: str) -> Lesson:
    """The lesson, or every problem in it: its front matter's, then each step's first."""
    front, body, offset = _split_front_matter(read_text(file), file)
    errors: list[PackError] = []
    try:
        meta = validate(FrontMatter, *read_yaml(front, file, 2), file, 2, "front matter")
    except PackError as exc:
        errors.append(exc)
    intro, steps, sections = _parse_body(body, file, offset, errors)
    if not sections:
        errors.append(PackError(file, offset + 1,
                                "a lesson needs at least one step (a `##` heading)"))
    if errors:
        raise combined(errors)
    return Lesson(**meta.model_dump(), pack=pack_id, file=file, intro=intro, steps=steps)


def front_matter_line(file: Path, *loc: int | str) -> int:
    """Line of a front matter field, for errors found once the whole catalog is known."""
    front, _, _ = _split_front_matter(read_text(file), file)
    return 2 + line_of(read_yaml(front, file, 2)[1], loc)


def _split_front_matter(text: str, file: Path) -> tuple[str, str, int]:
    """(front matter, body, number of lines before the body)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        raise PackError(file, 1, "a lesson starts with YAML front matter between `---` lines")
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1:]), i + 1
    raise PackError(file, 1, "the front matter is never closed by a `---` line")


def _parse_body(body: str, file: Path, offset: int,
                errors: list[PackError]) -> tuple[str, list[Step], int]:
    """(introduction, steps, number of `##` sections); a broken step is left out, its
    first problem added to `errors`, and the next step is read on its own."""
    lines = body.splitlines()
    tokens = _MD.parse(body)
    sections = [_Section(title="", line=0, start=0)]
    hidden: set[int] = set()  # headings and blocks: body lines that are not prose
    broken: set[int] = set()  # sections with a problem found: not built into steps
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h2" and tok.level == 0 and tok.map:
            sections.append(_Section(_plain_text(tokens[i + 1]), offset + tok.map[0] + 1,
                                     tok.map[0]))
            hidden.update(range(*tok.map))
        elif tok.type == "fence" and tok.map:
            if len(sections) - 1 in broken:
                continue  # one problem per step: what follows may only echo it
            try:
                if not _add_block(tok, lines, file, offset, sections[-1]):
                    continue  # a code sample in the prose
            except PackError as exc:
                errors.append(exc)
                broken.add(len(sections) - 1)
            hidden.update(range(*tok.map))
    ends = [s.start for s in sections[1:]] + [len(lines)]
    prose = [_prose(lines, s.start, end, hidden) for s, end in zip(sections, ends, strict=True)]
    seen: dict[str, int] = {}
    steps = []
    for n, (section, text) in enumerate(zip(sections[1:], prose[1:], strict=True), 1):
        if n in broken:
            continue
        try:
            step = _build_step(section, text, file)
            if step.id in seen:
                raise PackError(file, step.line,
                                f"step id '{step.id}' is already used on line {seen[step.id]}")
        except PackError as exc:
            errors.append(exc)
            continue
        seen[step.id] = step.line
        steps.append(step)
    errors.sort(key=lambda e: e.line)
    return prose[0], steps, len(sections) - 1


def _add_block(tok: Token, lines: list[str], file: Path, offset: int, section: _Section) -> bool:
    """Whether the fence is one of the step's blocks (added), not a sample in its prose."""
    block = _read_block(tok, lines, file, offset)
    if block is None:
        return False
    if not section.line:
        raise PackError(file, block.line - 1,
                        f"a {block.kind} block must be inside a step (after a `##` heading)")
    if tok.level != 0:
        raise PackError(file, block.line - 1,
                        f"a {block.kind} block must not be nested in a list or quote")
    if block.kind in section.blocks:
        first = section.blocks[block.kind].line - 1
        raise PackError(file, block.line - 1,
                        f"a second {block.kind} block in this step (the first is on line {first})")
    section.blocks[block.kind] = block
    return True


def _read_block(tok: Token, lines: list[str], file: Path, offset: int) -> _Block | None:
    """The block a fence is, or None for an ordinary code sample in the prose."""
    assert tok.map is not None
    fence_line = offset + tok.map[0] + 1
    words = tok.info.split()
    if len(words) == 1 and words[0] in BLOCK_LANGS and BLOCK_LANGS[words[0]] is not None:
        raise PackError(file, fence_line,
                        f"write ```{BLOCK_LANGS[words[0]]} {words[0]} to mark a {words[0]} block")
    if not words or (len(words) == 1 and words[0] not in BLOCK_LANGS):
        return None
    kind = words[-1]
    lang = words[0] if len(words) == 2 else None
    if kind not in BLOCK_LANGS or len(words) > 2:
        known = ", ".join(BLOCK_LANGS)
        kind = tok.info.strip()
        raise PackError(file, fence_line, f"unknown block kind '{kind}' (known: {known})")
    if lang != BLOCK_LANGS[kind]:
        expected = " ".join(w for w in (BLOCK_LANGS[kind], kind) if w)
        raise PackError(file, fence_line, f"a {kind} block is written ```{expected}")
    last = lines[tok.map[1] - 1].strip() if tok.map[1] - 1 > tok.map[0] else ""
    if not last.startswith(tok.markup) or last.strip(tok.markup[0]):
        raise PackError(file, fence_line, f"the {kind} block is never closed")
    # A missing closing fence swallows the next block up to its own closing fence.
    for i, text in enumerate(tok.content.splitlines()):
        opener = text.strip()
        inner = opener.lstrip(tok.markup[0]).split()
        if opener.startswith(tok.markup) and inner and inner[-1] in BLOCK_LANGS:
            raise PackError(file, fence_line, f"the {kind} block is not closed before line "
                                              f"{fence_line + 1 + i}")
    return _Block(kind, tok.content, fence_line + 1)


def _plain_text(inline: Token) -> str:
    parts = [c.content for c in inline.children or [] if c.type in ("text", "code_inline")]
    return " ".join("".join(parts).split())


def _prose(lines: list[str], start: int, end: int, hidden: set[int]) -> str:
    kept = [lines[i] for i in range(start, end) if i not in hidden]
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _snippet(block: _Block, file: Path) -> Snippet:
    if not block.text.strip():
        raise PackError(file, block.line - 1, f"the {block.kind} snippet is empty")
    if len(block.text.encode("utf-8")) > MAX_CODE_BYTES:
        raise PackError(file, block.line - 1,
                        f"the {block.kind} snippet is larger than {MAX_CODE_BYTES // 1024} KiB")
    markers = [i for i, ln in enumerate(block.text.splitlines()) if ln.strip() == TIMED_MARKER]
    if len(markers) > 1:
        raise PackError(file, block.line + markers[1],
                        f"a second `{TIMED_MARKER}` marker (a snippet has at most one)")
    return Snippet(code=block.text, file=file, line=block.line)


def _build_step(section: _Section, prose: str, file: Path) -> Step:
    step_id = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")
    if not step_id:
        raise PackError(file, section.line, "a step heading needs letters or digits for its id")
    blocks = section.blocks
    for kind in ("tensorflow", "pytorch"):
        if kind not in blocks:
            raise PackError(file, section.line,
                            f"step '{step_id}' has no ```python {kind} block")
    compare = graph = exercise = None
    if (b := blocks.get("compare")) is not None:
        data, node = read_yaml(b.text, file, b.line)
        compare = validate(Compare, data, node, file, b.line, "compare block")
        for side in ("tensorflow", "pytorch"):
            for name in getattr(compare, side).keys() - set(compare.names):
                raise PackError(file, b.line + line_of(node, [side, name]),
                                f"compare block: {side}: '{name}' is not in names")
    if (b := blocks.get("graph")) is not None:
        data, node = read_yaml(b.text, file, b.line)
        graph = validate(GraphSpec, data, node, file, b.line, "graph block")
        if graph.tensorflow is None and graph.pytorch is None:
            raise PackError(file, b.line - 1, "graph block: name what to draw on at least one side")
    pitfall = blocks["pitfall"].text.strip() if "pitfall" in blocks else None
    if pitfall == "":
        raise PackError(file, blocks["pitfall"].line - 1, "the pitfall block is empty")
    if (b := blocks.get("exercise")) is not None:
        for kind in ("starter", "solution"):
            if kind not in blocks:
                raise PackError(file, b.line - 1, f"an exercise needs a ```python {kind} block")
        data, node = read_yaml(b.text, file, b.line)
        exercise = validate(Exercise, data, node, file, b.line, "exercise block",
                            starter=_snippet(blocks["starter"], file),
                            solution=_snippet(blocks["solution"], file))
    else:
        for kind in ("starter", "solution"):
            if kind in blocks:
                raise PackError(file, blocks[kind].line - 1,
                                f"a {kind} block needs a ```yaml exercise block in its step")
    return Step(id=step_id, title=section.title, file=file, line=section.line, prose=prose,
                tensorflow=_snippet(blocks["tensorflow"], file),
                pytorch=_snippet(blocks["pytorch"], file),
                compare=compare, graph=graph, pitfall=pitfall, exercise=exercise)
