"""Line-aware reading of pack sources.

Pack authors fix problems in an editor, so every error carries the file and
the line it comes from. YAML is composed into nodes first (they keep their
marks) and only then built into data, so a validation error on a field can
point at that field's own line rather than the top of its block.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

M = TypeVar("M", bound=BaseModel)


class PackError(Exception):
    """A problem in a pack; the message starts with `file:line:`."""

    def __init__(self, file: Path | str, line: int, message: str) -> None:
        self.file = Path(file)
        self.line = line
        self.detail = message
        super().__init__(f"{file}:{line}: {message}")


def read_text(file: Path) -> str:
    """A pack file's text; one that is not UTF-8 is an error naming the file."""
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PackError(file, 1, f"not UTF-8 text ({exc.reason})") from None


def read_yaml(text: str, file: Path, first_line: int) -> tuple[Any, Node | None]:
    """Parse `text`, whose first line is line `first_line` of `file`."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + (mark.line if mark else 0)
        raise PackError(file, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PackError(file, first_line, f"invalid YAML: {exc}") from None
    except RecursionError:  # a document of nested brackets thousands deep
        raise PackError(file, first_line, "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data, node


def validate(model: type[M], data: Any, node: Node | None, file: Path, first_line: int,
             what: str, **extra: Any) -> M:
    """Build `model` from YAML data; an error names the offending field's line."""
    if not isinstance(data, dict):
        raise PackError(file, first_line, f"{what} must be a YAML mapping of fields")
    for key in data.keys() & extra.keys():
        line = first_line + line_of(node, [key])
        raise PackError(file, line, f"{what}: {key}: comes from its own block, not from here")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        line = first_line + line_of(node, first["loc"])
        field = ".".join(loc) or what
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        more = exc.error_count() - 1
        tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise PackError(file, line, f"{what}: {field}: {message}{tail}") from None


def line_of(node: Node | None, loc: Sequence[int | str]) -> int:
    """0-based line of the deepest node `loc` reaches; a missing key stays on its parent."""
    if node is None:
        return 0
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line, hit[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line
