"""A port as the site shows it: its report, each trap's lesson step, its files.

The report comes from the sandbox (every string in it is the uploader's to
choose: layer names, the summary, the source); pages escape it as they
show it, and links are made here from the catalog, never from the report.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from app.packs.models import Catalog
from app.store.ports import PortRecord, PortStatus
from sandbox.executor import PORT_FILES
from sandbox.protocol import PortReport, PortTrap

# What each file is served as.
MEDIA_TYPES = {
    "model.py": "text/x-python; charset=utf-8",
    "check.py": "text/x-python; charset=utf-8",
    "weights.safetensors": "application/octet-stream",
    "port_report.json": "application/json",
    "port.zip": "application/zip",
}
assert set(MEDIA_TYPES) == set(PORT_FILES)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,80}")
# `/port`'s form as it first shows (PortOrder's defaults) and when a refusal keeps nothing.
FORM_DEFAULTS: dict[str, Any] = {"layout": "nhwc", "atol": "1e-05", "rtol": "0.0001",
                                 "onnx": False, "code": ""}


class TrapLink(PortTrap):
    lesson_url: str | None = None  # the lesson step teaching it, on this site


class PortDetail(PortReport):
    """`GET /api/ports/{id}`: the report, flat, with the port's own fields."""

    id: str
    status: Literal["porting", "proved", "partial", "failed"]  # type: ignore[assignment]
    source: str  # the uploaded file's name ('' for a snippet)
    created_at: float
    traps: list[TrapLink] = Field(default_factory=list)  # type: ignore[assignment]
    files: dict[str, str] = Field(default_factory=dict)  # name -> URL, once kept


def lesson_url(trap: PortTrap, catalog: Catalog) -> str | None:
    """The step teaching the trap: its lesson's page, at the step whose title is the section."""
    lesson = catalog.lesson(trap.lesson) if trap.lesson else None
    if lesson is None:
        return None
    step = next((s for s in lesson.steps if s.title == trap.section), None)
    return f"/lessons/{lesson.id}" + (f"#step-{step.id}" if step is not None else "")


def detail(record: PortRecord, catalog: Catalog, kept: list[str]) -> PortDetail:
    asked = {k: record.order[k] for k in ("atol", "rtol", "layout") if k in record.order}
    report = (PortReport.model_validate(record.report) if record.report is not None
              else PortReport(status="failed", **asked))  # still porting: what was asked
    fields = report.model_dump(exclude={"status", "traps"})
    base = f"/api/ports/{record.id}"
    return PortDetail(**fields, id=record.id, status=record.status, source=record.source,
                      created_at=record.created_at,
                      traps=[TrapLink(**t.model_dump(), lesson_url=lesson_url(t, catalog))
                             for t in report.traps],
                      files={name: f"{base}/{name}" for name in kept})


def download_name(name: str, class_name: str) -> str:
    """The zip is named after the model's class (an identifier, or it isn't used)."""
    if name == "port.zip" and IDENTIFIER.fullmatch(class_name):
        return f"{class_name}_port.zip"
    return name


def finished(status: PortStatus) -> bool:
    return status != PortStatus.porting
