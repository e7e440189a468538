"""Where the site's own folders are: templates/, static/ and the bundled lessons/.

A checkout (and an editable install) keeps them at its top, beside app/. A
wheel carries them inside the app package (setup.py), since site-packages
has no checkout around it. Inside the package is looked at first: a stray
top-level `templates` folder in site-packages must not win.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def folder(name: str) -> Path:
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name


TEMPLATES = folder("templates")
STATIC = folder("static")
LESSONS = folder("lessons")
