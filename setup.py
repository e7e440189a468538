"""What pyproject.toml can't say: the wheel carries the site's folders.

templates/, static/ and lessons/ sit at the top of the checkout, beside
app/. An installed package has no checkout beside it, so the wheel maps them
into the app package (app/templates, app/static, app/lessons);
app/resources.py looks there first. The editor's sources (static/editor/src)
stay out: the built bundle beside them is what is served.
"""

from pathlib import Path

from setuptools import find_packages, setup

BUNDLED = ("templates", "static", "lessons")
LEFT_OUT = (Path("static/editor/src"),)


def folders(top: str) -> list[str]:
    """Every folder below top as a package name: setuptools ships a folder's
    files as package data only when the folder is listed as a package."""
    found = [Path(top), *(p for p in sorted(Path(top).rglob("*")) if p.is_dir())]
    kept = [p for p in found if not any(p == out or out in p.parents for out in LEFT_OUT)]
    return [".".join(("app", *p.parts)) for p in kept]


bundled = [name for top in BUNDLED for name in folders(top)]
setup(
    packages=[*find_packages(include=["app", "app.*", "sandbox", "sandbox.*"]), *bundled],
    package_dir={f"app.{top}": top for top in BUNDLED},
    package_data={name: ["*"] for name in bundled},
)
