"""The porter: a Keras model in; idiomatic PyTorch source, its weights and a
layer-by-layer proof out. Runs inside the sandbox, where keras and torch are
imported; importing this package alone imports neither (`traps` is light)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ported import AppliedTrap, LayerPort, Port, port
    from .proof import Proof, Row, prove

__all__ = ["AppliedTrap", "LayerPort", "Port", "Proof", "Row", "port", "prove"]
_HOME = {"AppliedTrap": "ported", "LayerPort": "ported", "Port": "ported", "port": "ported",
         "Proof": "proof", "Row": "proof", "prove": "proof"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
