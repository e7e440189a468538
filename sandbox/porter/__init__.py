"""The porter: a Keras model in; idiomatic PyTorch source, its weights and a
layer-by-layer proof out. Runs inside the sandbox, where keras and torch are
imported; importing this package alone imports neither (`traps` is light).

    port(model) -> Port       ported.py   the source, state_dict, layers, traps, stubs
    prove(model, port)        proof.py    both models on the same inputs, layer by layer
    load_given_inputs(...)    given_inputs.py  the user's .npy/.npz, checked against the model

    graph.py       the Keras functional graph as calls in order (nested models inside)
    emit.py        model.py from fixed templates: one class per (nested) model
    forward.py     forward's variables: layouts, permutes, `x` for a chain
    helpers.py     source blocks model.py defines when a layer needs them (with
                   recurrent_blocks.py: masked loops, cells; attention_blocks.py)
    wrap.py        long calls and comments folded to fit the line
    converters/    one converter per layer family; anything else becomes a stub
    names.py       Keras names as safe, unique Python identifiers
    traps.py       each trap key's lesson section

Keras names reach the source only as sanitised identifiers or `repr` literals.
"""

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
