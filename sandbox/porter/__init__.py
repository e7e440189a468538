"""The porter: a Keras model in; idiomatic PyTorch source, its weights and a
layer-by-layer proof out. Runs inside the sandbox; imports keras and torch."""

from __future__ import annotations

from .port import AppliedTrap, LayerPort, Port, port
from .prove import Proof, Row, prove

__all__ = ["AppliedTrap", "LayerPort", "Port", "Proof", "Row", "port", "prove"]
