"""The user's own inputs for the proof: a `.npy` or `.npz` file, read in the run only.

The file is the user's, so it is read as untrusted: `np.load` with
`allow_pickle=False` (an object array, or a pickle in disguise, is refused,
never unpickled), then checked against the model's inputs: how many, each
shape with the batch dimension free, and a dtype the input takes (float32,
or whole numbers for an integer input such as an Embedding's). Every refusal
is an `InputsRefused` whose message says which input and what was expected.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from .proof import vocabulary


class InputsRefused(Exception):
    """The given inputs can't be proved on: the message says why, for the report."""


def input_names(model: Any) -> list[str]:
    """Each input's name as the summary shows it (its InputLayer's), in order."""
    names = []
    for tensor in model.inputs:
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None)
        names.append(str(getattr(layer, "name", None) or tensor.name))
    return names


def read_arrays(fd: int, suffix: str, names: list[str]) -> list[np.ndarray]:
    """The file's arrays in the model's input order; refused unreadable or misnamed.
    A .npz's names are matched before any array is read: only those are loaded."""
    with os.fdopen(os.dup(fd), "rb") as f:
        try:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                if suffix != ".npy":
                    raise InputsRefused("the inputs file is a .npy array, but was named .npz")
                if len(names) != 1:
                    raise InputsRefused(
                        f"the model has {len(names)} inputs ({', '.join(names)}): give them "
                        "as a .npz, one array per input, not one .npy")
                return [loaded]
            with loaded:
                if suffix != ".npz":
                    raise InputsRefused("the inputs file is a .npz archive, but was named "
                                        ".npy")
                return [loaded[key] for key in ordered(list(loaded.files), names)]
        except InputsRefused:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise InputsRefused(f"the inputs file can't be read as {suffix} "
                                f"(numpy, no pickled objects): {exc}") from exc


def ordered(keys: list[str], names: list[str]) -> list[str]:
    """A .npz's keys in the model's input order: by input name, or arr_0, arr_1, ..."""
    positional = [f"arr_{i}" for i in range(len(names))]
    for wanted in (names, positional):
        if sorted(keys) == sorted(wanted):
            return wanted
    one = len(names) == 1
    raise InputsRefused(
        f"the .npz holds {len(keys)} arrays ({', '.join(sorted(keys)[:8]) or 'none'}"
        f"{', ...' if len(keys) > 8 else ''}); the model has {len(names)} "
        f"input{'' if one else 's'}: name {'it' if one else 'them'} {', '.join(names)} "
        f"(or {', '.join(positional)}, in that order)")


def checked(model: Any, arrays: list[np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Each array against its input: shape (batch free), dtype; cast as the proof runs it."""
    batch: list[np.ndarray] = []
    vocab = vocabulary(model)
    for name, tensor, array in zip(names, model.inputs, arrays, strict=True):
        expected = tuple(tensor.shape)
        wanted = "(batch, " + ", ".join("any" if d is None else str(d)
                                        for d in expected[1:]) + ")"
        fits = array.ndim == len(expected) and array.ndim > 0 and all(
            d is None or d == n for d, n in zip(expected[1:], array.shape[1:], strict=True))
        if not fits or array.shape[0] == 0:
            raise InputsRefused(f"input {name!r} expects shape {wanted}; the given array "
                                f"has shape {tuple(array.shape)}")
        if "int" in str(tensor.dtype):
            if array.dtype.kind not in "iu":
                raise InputsRefused(f"input {name!r} takes whole numbers (an index, such as "
                                    f"an Embedding's); the given array is {array.dtype}")
            if vocab is not None and array.size and (array.min() < 0 or array.max() >= vocab):
                raise InputsRefused(f"input {name!r} takes indices 0 to {vocab - 1}; the given "
                                    f"array holds {array.min()} to {array.max()}")
            batch.append(array.astype(np.int64))
            continue
        if not np.can_cast(array.dtype, np.float32, casting="same_kind"):
            raise InputsRefused(f"input {name!r} takes float32; the given array is "
                                f"{array.dtype}, which does not cast to it")
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise InputsRefused(f"input {name!r}: the given array holds NaN or infinity "
                                "(in float32), which no comparison can pass")
        batch.append(values)
    if len({a.shape[0] for a in batch}) > 1:
        sizes = ", ".join(f"{n}: {a.shape[0]}" for n, a in zip(names, batch, strict=True))
        raise InputsRefused(f"the given inputs have different batch sizes ({sizes})")
    return batch


def load_given_inputs(fd: int, suffix: str, model: Any) -> list[np.ndarray]:
    """The user's inputs as one batch for `prove(inputs=...)`; raises InputsRefused."""
    names = input_names(model)
    return checked(model, read_arrays(fd, suffix, names), names)
