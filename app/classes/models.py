"""The classes API's request and response bodies."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_NAME_CHARS = 40
MAX_TITLE_CHARS = 120
MAX_MESSAGE_CHARS = 500
MAX_LESSONS = 50
Id = Annotated[str, Field(min_length=1, max_length=200)]


def clean_text(value: str, most: int, what: str) -> str:
    """One line of people's text: no control characters, spaces collapsed."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in "\t\n" for c in value):
        raise ValueError(f"{what} must not contain control characters")
    value = re.sub(r"\s+", " ", value).strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > most:
        raise ValueError(f"{what} is longer than {most} characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateClass(_Strict):
    pack: Id
    version: int | None = Field(None, ge=1, description=(
        "an uploaded pack's version to pin (default: its latest ready one); "
        "bundled packs have none"))
    title: Annotated[str, Field(max_length=MAX_TITLE_CHARS * 4)]
    lessons: Annotated[list[Id], Field(max_length=MAX_LESSONS)] | None = Field(
        None, description="a subset of the pack's lessons, in class order; default: all")

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return clean_text(value, MAX_TITLE_CHARS, "title")


class ClassCreated(BaseModel):
    code: str
    join_url: str
    instructor_url: str = Field(description="private: it signs the browser in as the instructor")
    instructor_token: str = Field(description="send as `Authorization: Bearer …`")


class JoinClass(_Strict):
    name: Annotated[str, Field(max_length=MAX_NAME_CHARS * 4)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return clean_text(value, MAX_NAME_CHARS, "name")


class Joined(BaseModel):
    student_token: str = Field(description="send as `Authorization: Bearer …` with runs")
    lesson_url: str


class RosterEntry(BaseModel):
    id: str
    name: str
    lesson: str
    step: str
    runs: int
    passed: int
    last_status: str | None
    last_error: str | None
    stuck: bool
    stuck_reason: str | None
    idle_s: int


class Follow(_Strict):
    lesson: Id
    step: Id


class Message(_Strict):
    text: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS * 4)]

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return clean_text(value, MAX_MESSAGE_CHARS, "message")


class Pause(_Strict):
    paused: bool = True


class ClassState(BaseModel):
    code: str
    title: str
    lessons: list[str]
    paused: bool
    ended: bool
    follow_lesson: str | None
    follow_step: str | None
    message: str | None
    learners: int


class LearnerCode(BaseModel):
    id: str
    name: str
    lesson: str | None
    step: str | None
    tensorflow: str | None
    pytorch: str | None
    result: dict[str, dict[str, str | int | None]]
