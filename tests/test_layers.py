"""The house's layers: each part of `app/` imports only the parts below it, and the
engine (`sandbox/`) never imports the web app."""

from __future__ import annotations

import ast
from pathlib import Path

from app.settings import ROOT

# Lowest first. A module may import its own layer and those below it, never above.
LAYERS: list[tuple[str, ...]] = [
    ("app.resources", "app.settings", "app.tokens", "app.bytecache"),
    ("app.store",),
    ("app.packs", "app.compare"),
    ("app.classes",),
    ("app.pipeline", "app.ports"),
    ("app.check", "app.web"),
    ("app.state", "app.errors"),
    ("app.deps",),
    ("app.routes",),
    ("app.main", "app.cli", "app.port_command"),
]


def layer_of(module: str) -> int | None:
    for depth, parts in enumerate(LAYERS):
        if any(module == part or module.startswith(part + ".") for part in parts):
            return depth
    return None


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] if node.module != "app" else [
                f"app.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_every_app_module_has_a_layer() -> None:
    unplaced = [module_name(p) for p in (ROOT / "app").rglob("*.py")
                if p.name != "__init__.py" and layer_of(module_name(p)) is None]
    assert unplaced == []


def test_no_app_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in (ROOT / "app").rglob("*.py"):
        mine = layer_of(module_name(path))
        for name in imported(path):
            theirs = layer_of(name)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module_name(path)} -> {name}")
    assert upward == []


def test_the_sandbox_never_imports_the_web_app() -> None:
    found = [f"{module_name(p)} -> {name}" for p in (ROOT / "sandbox").rglob("*.py")
             for name in imported(p) if name == "app" or name.startswith("app.")]
    assert found == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("from app.routes import steps\nimport app.deps\nfrom app import state\n")
    assert imported(source) == ["app.routes", "app.deps", "app.state"]
    assert layer_of("app.store.db") < layer_of("app.pipeline.service")  # type: ignore[operator]
