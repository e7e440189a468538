"""A two-level diff of a TensorFlow and a PyTorch snippet.

Lines are aligned first (difflib over whole lines); a changed line is then
compared token by token (Pygments' Python tokens), so the page can mark
`tf.reduce_sum(x, axis=1)` against `x.sum(dim=1)` down to the words that
differ, which is what a TensorFlow user reads first.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from itertools import zip_longest

from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES, Token, _TokenType


@dataclasses.dataclass(frozen=True)
class Piece:
    text: str
    css: str  # Pygments short class, "hl-" prefixed by the template
    changed: bool


@dataclasses.dataclass(frozen=True)
class Line:
    number: int | None  # None: a gap where the other side has a line
    pieces: tuple[Piece, ...]


@dataclasses.dataclass(frozen=True)
class Row:
    kind: str  # "same" | "change" | "only-left" | "only-right"
    left: Line
    right: Line


_GAP = Line(None, ())
_LEXER = PythonLexer(stripnl=False, ensurenl=False)


def diff_snippets(left: str, right: str) -> list[Row]:
    a, b = _lines(left), _lines(right)
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, [_text(x) for x in a], [_text(x) for x in b],
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [Row("same", _line(i + 1, a[i], None), _line(j + 1, b[j], None))
                     for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        for i, j in zip_longest(range(i1, i2), range(j1, j2)):
            if i is None:
                rows.append(Row("only-right", _GAP, _line(j + 1, b[j], set())))
            elif j is None:
                rows.append(Row("only-left", _line(i + 1, a[i], set()), _GAP))
            else:
                keep_a, keep_b = _same_tokens(a[i], b[j])
                rows.append(Row("change", _line(i + 1, a[i], keep_a), _line(j + 1, b[j], keep_b)))
    return rows


def changed_lines(rows: list[Row]) -> int:
    return sum(r.kind != "same" for r in rows)


Tok = tuple[_TokenType, str]


@functools.lru_cache(maxsize=512)
def _lines(code: str) -> tuple[tuple[Tok, ...], ...]:
    lines: list[list[Tok]] = [[]]
    for ttype, value in _LEXER.get_tokens(code):
        parts = value.split("\n")
        for k, part in enumerate(parts):
            if k:
                lines.append([])
            if part:
                lines[-1].append((ttype, part))
    if code.endswith("\n") and not lines[-1]:
        lines.pop()
    return tuple(tuple(x) for x in lines)


def _text(line: tuple[Tok, ...]) -> str:
    return "".join(v for _, v in line).strip()


def _same_tokens(a: tuple[Tok, ...], b: tuple[Tok, ...]) -> tuple[set[int], set[int]]:
    """Indexes of the tokens each side shares with the other, whitespace aside."""
    sa = [v for _, v in a]
    sb = [v for _, v in b]
    matcher = difflib.SequenceMatcher(lambda v: v.isspace(), sa, sb, autojunk=False)
    keep_a: set[int] = set()
    keep_b: set[int] = set()
    for block in matcher.get_matching_blocks():
        keep_a.update(range(block.a, block.a + block.size))
        keep_b.update(range(block.b, block.b + block.size))
    keep_a.update(i for i, v in enumerate(sa) if v.isspace())
    keep_b.update(i for i, v in enumerate(sb) if v.isspace())
    return keep_a, keep_b


def _line(number: int, tokens: tuple[Tok, ...], keep: set[int] | None) -> Line:
    pieces = tuple(
        Piece(v, _css(t), changed=keep is not None and i not in keep)
        for i, (t, v) in enumerate(tokens)
    )
    return Line(number, pieces)


def _css(ttype: _TokenType) -> str:
    while ttype not in STANDARD_TYPES and ttype is not Token:
        ttype = ttype.parent
    return STANDARD_TYPES.get(ttype, "")
