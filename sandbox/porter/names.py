"""Python identifiers from Keras names: a layer called anything becomes a safe, unique name."""

from __future__ import annotations

import keyword
import re

from torch import nn

# Names the generated file itself uses at module level or in `forward`.
RESERVED = frozenset({
    "self", "torch", "nn", "F", "load", "load_file", "weights_path", "model", "math",
    "annotations", "range", "tuple", "len", "super", "float", "int", "str",
})


def identifier(name: str, fallback: str = "layer") -> str:
    """Letters, digits and underscores only, never a keyword, never starting with a digit."""
    ident = re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_") or fallback
    if ident[0].isdigit():
        ident = f"{fallback}_{ident}"
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


def class_name(name: str) -> str:
    ident = identifier(name, fallback="Model")
    camel = "".join(part[:1].upper() + part[1:] for part in ident.split("_") if part)
    if not camel or camel[0].isdigit():
        camel = "Model" + camel
    return camel


class Namer:
    """Hands out unique identifiers; a name once given is never given again."""

    def __init__(self, taken: frozenset[str] | set[str] = RESERVED) -> None:
        self.taken: set[str] = set(taken)

    def name(self, wanted: str, fallback: str = "layer", sep: str = "_") -> str:
        base = identifier(wanted, fallback)
        if hasattr(nn.Module, base):  # `forward`, `eval`, `training`...: keep nn.Module whole
            base += "_"
        candidate, n = base, 1
        while candidate in self.taken:
            candidate, n = f"{base}{sep}{n}", n + 1
        self.taken.add(candidate)
        return candidate
