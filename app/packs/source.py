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


class PackErrors(PackError):
    """Every problem found in one pass, in file and line order; the first is its file and line,
    and its message lists them all, a line each."""

    def __init__(self, errors: list[PackError]) -> None:
        self.errors = [e for error in errors for e in each(error)]
        first = self.errors[0]
        super().__init__(first.file, first.line, first.detail)
        self.args = ("\n".join(str(e) for e in self.errors),)


def each(error: PackError) -> list[PackError]:
    """The problems an error stands for: itself, or each of several."""
    return error.errors if isinstance(error, PackErrors) else [error]


def combined(errors: list[PackError]) -> PackError:
    """One error for one or several (a list that is not empty)."""
    return errors[0] if len(errors) == 1 else PackErrors(errors)


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
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or what
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(PackError(file, first_line + line_of(node, error["loc"]),
                                      f"{what}: {field}: {message}"))
        raise combined(sorted(problems, key=lambda e: e.line)) from None


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
