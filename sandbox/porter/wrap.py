"""Long lines of model.py folded as a person would: a call's arguments one per line
(recursively, while a line is still too long), and comments at word boundaries."""

from __future__ import annotations

import re
import textwrap

WIDTH = 100


def split_call(source: str) -> tuple[str, list[str], str] | None:
    """`name(a, b(c, d), "e, f")[0]` -> ("name", ["a", "b(c, d)", '"e, f"'], "[0]"), or
    None when the source is not one call (then an index)."""
    suffix = re.search(r"(\[[\w:, -]*\])*$", source)
    tail = suffix.group(0) if suffix else ""
    source = source[:len(source) - len(tail)]
    head = source.find("(")
    if head <= 0 or not source.endswith(")"):
        return None
    args, depth, quote, start, i = [], 0, "", head + 1, head
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(source) - 1:
                return None  # the call ends before the source does: `f(x)[0]`
        elif ch == "," and depth == 1:
            args.append(source[start:i].strip())
            start = i + 1
        i += 1
    last = source[start:-1].strip()
    return source[:head], [*args, last] if last else args, tail


def fold(source: str, indent: int, lead: int = 0, width: int = WIDTH) -> list[str]:
    """`source` (an expression, after `lead` characters of its statement) as lines from
    `indent` on that fit `width` if they can."""
    if indent + lead + len(source) <= width:
        return [source]
    parts = split_call(source)
    if parts is None or not parts[1]:
        return [source]
    name, args, tail = parts
    lines = [f"{name}("]
    for arg in args:
        inner = fold(arg, indent + 4, width=width - 1)
        inner[-1] += ","
        lines += ["    " + line for line in inner]
    lines.append(")" + tail)
    return lines


def statement(line: str, indent: int, width: int = WIDTH) -> list[str]:
    """An assignment `a, b = call(...)` with its call folded if it is too long."""
    target, eq, source = line.partition(" = ")
    if not eq or line.startswith("#"):
        return [line]
    first, *rest = fold(source, indent, len(target) + 3, width)
    return [f"{target} = {first}", *rest]


def comment(text: str, indent: int, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width=max(width - indent, 40), initial_indent="# ",
                         subsequent_indent="#   ", break_on_hyphens=False)
