"""Lesson packs: the format's models, its loader, prose rendering and `check`."""

from __future__ import annotations

from app.packs.loader import PackError, load_lesson, load_pack, load_packs
from app.packs.models import Catalog, Compare, Exercise, GraphSpec, Lesson, Pack, Snippet, Step

__all__ = [
    "Catalog", "Compare", "Exercise", "GraphSpec", "Lesson", "Pack", "PackError", "Snippet",
    "Step", "load_lesson", "load_pack", "load_packs",
]
