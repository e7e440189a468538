"""What a lesson pack is once loaded: plain typed values, no I/O.

The loader builds these from `pack.yaml` and the lesson files; the API, the
pages and `sidebyside check` read them. Prose and pitfalls stay Markdown
here and are turned into safe HTML by `app.packs.render` where shown.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.protocol import Device, Framework

Level = Literal["beginner", "intermediate", "advanced"]
LEVELS: tuple[Level, ...] = ("beginner", "intermediate", "advanced")

VERSION_MARK = "--v"  # `--` never occurs in an author's ids (ids match lesson_file.ID_PATTERN)


@dataclasses.dataclass(frozen=True)
class VersionedPackId:
    """An uploaded pack's version as the site's catalog names it: `name--vN`.

    Its lessons are `name--vN--lesson`, so versions never clash, with each
    other or with the bundled packs.
    """

    pack: str
    version: int

    def __str__(self) -> str:
        return f"{self.pack}{VERSION_MARK}{self.version}"

    @classmethod
    def parse(cls, text: str) -> VersionedPackId | None:
        """The version a catalog pack id names; None for a bundled pack's id."""
        pack, mark, number = text.rpartition(VERSION_MARK)
        if not mark or not pack or not number.isdigit():
            return None
        return cls(pack, int(number))


DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6


class _Frozen(BaseModel):
    # extra="forbid" makes a typo in a YAML block an error instead of a no-op
    model_config = ConfigDict(extra="forbid", frozen=True)


class Snippet(_Frozen):
    code: str
    file: Path
    line: int  # line of the snippet's first code line in `file`, 1-based

    def file_line(self, snippet_line: int | None) -> int:
        """The line in the lesson file of a (1-based) line of the snippet."""
        if snippet_line is None or snippet_line < 1:
            return self.line
        return self.line + snippet_line - 1

    def where(self, snippet_line: int | None = None) -> str:
        return f"{self.file}:{self.file_line(snippet_line)}"


class Compare(_Frozen):
    names: list[str] = Field(min_length=1)
    rtol: float = Field(DEFAULT_RTOL, ge=0)
    atol: float = Field(DEFAULT_ATOL, ge=0)
    # name -> expression evaluated after the snippet, in place of the bare name
    tensorflow: dict[str, str] = Field(default_factory=dict)
    pytorch: dict[str, str] = Field(default_factory=dict)

    def exprs(self, framework: Framework) -> dict[str, str]:
        """Every compared name with the expression that yields it on one side."""
        given = self.tensorflow if framework == "tensorflow" else self.pytorch
        return {name: given.get(name, name) for name in self.names}


class GraphSpec(_Frozen):
    tensorflow: str | None = None
    pytorch: str | None = None


class Exercise(_Frozen):
    side: Framework
    compare: list[str] = Field(min_length=1)
    rtol: float = Field(DEFAULT_RTOL, ge=0)
    atol: float = Field(DEFAULT_ATOL, ge=0)
    hints: list[str] = Field(default_factory=list)
    starter: Snippet
    solution: Snippet  # never sent to the browser


class Step(_Frozen):
    id: str
    title: str
    file: Path
    line: int  # the `##` heading
    prose: str  # Markdown
    tensorflow: Snippet
    pytorch: Snippet
    compare: Compare | None = None
    graph: GraphSpec | None = None
    pitfall: str | None = None  # Markdown
    exercise: Exercise | None = None

    def snippet(self, framework: Framework) -> Snippet:
        return self.tensorflow if framework == "tensorflow" else self.pytorch


class Lesson(_Frozen):
    id: str
    title: str
    summary: str
    level: Level
    minutes: int = Field(gt=0)
    prerequisites: list[str] = Field(default_factory=list)
    # gpu: runs prefer a GPU worker, and fall back to a CPU one while none is registered
    device: Device = "cpu"
    timeout_s: float | None = None  # each run's wall-time limit; None: the server's default
    pack: str  # the pack's id
    file: Path
    intro: str  # Markdown before the first step
    steps: list[Step]

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)


class Pack(_Frozen):
    id: str
    title: str
    version: str
    authors: list[str]
    description: str
    targets: dict[Framework, str]
    path: Path  # the pack's folder
    lessons: list[Lesson]


class Catalog(_Frozen):
    packs: list[Pack] = Field(default_factory=list)
    # Problems met while loading leniently (the server keeps what loaded);
    # each message starts with `file:line:`.
    errors: list[str] = Field(default_factory=list)

    @property
    def lessons(self) -> list[Lesson]:
        return [lesson for pack in self.packs for lesson in pack.lessons]

    def lesson(self, lesson_id: str) -> Lesson | None:
        return next((x for x in self.lessons if x.id == lesson_id), None)

    def pack(self, pack_id: str) -> Pack | None:
        return next((p for p in self.packs if p.id == pack_id), None)
