"""An untrusted model file in, a Keras model out: safe mode, and placeholders for the rest.

Runs in the sandbox. The file arrives as an open descriptor (`job.py`), read
through a file object: `keras.saving.load_model` wants a path ending in
`.keras`, but the loader it hands that path to (`saving_lib.load_model`)
takes a file object, and the legacy `.h5` loader takes an `h5py.File`, which
h5py opens on one. Both run in safe mode: Keras 3 refuses a Lambda's
marshalled bytecode in `.keras` and in legacy `.h5` alike, and a lambda
serialised as an activation too.

Layers Keras can't (or mustn't) build from the file: Lambda, classes it
doesn't know (a custom Layer subclass), and, on a second look at a file
Keras still refuses, any layer it won't make by itself in safe mode (a
Dense whose activation is a lambda). Refusing them would refuse the whole
model, so their configs are rewritten to `Unported` before Keras reads
them: a placeholder with the output shape the file records for the layer,
that restores none of its weights. It carries the layer's original class
name (its Python class is named after it) and config, so the porter writes
a stub for it, the report lists it, and the proof covers everything before
it. No Lambda config ever reaches Keras's deserialiser, and nothing of the
original layer's code is looked up or run.
"""
from __future__ import annotations

import copy
import importlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import keras

PLACEHOLDER = "SidebysideUnported"
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
_CLASS_NAME = re.compile(r"[^A-Za-z0-9_]")
Keep = Callable[[dict[str, Any]], bool]  # whether a layer's config is loaded as it is


@dataclass
class Loaded:
    model: Any
    notes: list[str] = field(default_factory=list)  # what the report should say of the load


class Unported(keras.layers.Layer):
    """Stands in for a layer that can't be built safely.

    Its output has the shape the file says the original's had (the layers
    reading it record it, in Keras 3's format; else a Lambda's own
    `output_shape`): zeros of that shape, or its first input unchanged when
    no shape is known. The proof stops at its stub, so only the shape matters
    to the layers after it.
    """

    def __init__(self, name: str | None = None, original_class: str = "Layer",
                 original_config: str = "{}", output_shape: list[Any] | None = None,
                 **_: Any) -> None:
        super().__init__(name=name)
        self.original_class, self.original_config = original_class, original_config
        self.shape_out = output_shape

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Unported:
        original = str(config.get("original_class", "Layer"))
        # Named after the layer it replaces: the stub and the report say which it was.
        short = original.rsplit(">", 1)[-1]  # a registered name: "package>Class"
        # Of this module, not Keras's: the porter converts only Keras's own classes, so a
        # stand-in named Dense is a stub all the same.
        named = type(_CLASS_NAME.sub("_", short)[:64] or "Layer", (cls,), {"__module__": __name__})
        shape = config.get("output_shape")
        known = isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape)
        return named(name=config.get("name"), original_class=original,
                     original_config=str(config.get("original_config", "{}")),
                     output_shape=shape if known and shape else None)

    def _first(self, inputs: Any) -> Any:
        return inputs[0] if isinstance(inputs, list | tuple) else inputs

    def compute_output_shape(self, input_shape: Any, *args: Any, **kwargs: Any) -> Any:
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self.shape_out is None:
            return first
        return (first[0], *self.shape_out[1:])

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        x = self._first(inputs)
        if self.shape_out is None:
            return x
        dtype = x.dtype if "float" in str(x.dtype) else "float32"
        return keras.ops.zeros((keras.ops.shape(x)[0], *self.shape_out[1:]), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.original_config))
        except ValueError:
            return {"name": self.name}

    def load_own_variables(self, store: Any) -> None:
        pass  # the original's weights belong to code that is not here


def _known(entry: dict[str, Any]) -> bool:
    """Whether Keras builds this layer from its own code (never a file's)."""
    class_name = str(entry.get("class_name", ""))
    if class_name == "Lambda" or class_name == PLACEHOLDER:
        return False
    if class_name in MODEL_CLASSES or hasattr(keras.layers, class_name):
        return True
    module = entry.get("module")
    if isinstance(module, str) and (module == "keras" or module.startswith("keras.")):
        try:
            return hasattr(importlib.import_module(module), class_name)
        except ImportError:
            return False
    return False


def _builds_alone(legacy: bool) -> Keep:
    """A second look, for a file Keras refused: whether each layer can be made by itself
    in safe mode (a Dense whose activation is a lambda can't)."""
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    def builds(entry: dict[str, Any]) -> bool:
        if not _known(entry):
            return False
        try:
            if legacy:
                with saving_options.keras_option_scope(use_legacy_config=True), \
                        serialization_lib.SafeModeScope(True):
                    saving_utils.model_from_config(copy.deepcopy(entry))
            else:
                serialization_lib.deserialize_keras_object(copy.deepcopy(entry), safe_mode=True)
        except Exception:
            return False
        return True

    return builds


def output_shapes(config: Any, found: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """Each layer's first output shape, as the tensors that read it record it (Keras 3)."""
    found = {} if found is None else found
    if isinstance(config, dict):
        history = config.get("config", {}).get("keras_history") if config.get(
            "class_name") == "__keras_tensor__" and isinstance(config.get("config"),
                                                               dict) else None
        if isinstance(history, list) and len(history) == 3 and history[2] == 0:
            found.setdefault(str(history[0]), config["config"].get("shape"))
        for value in config.values():
            output_shapes(value, found)
    elif isinstance(config, list):
        for value in config:
            output_shapes(value, found)
    return found


def placeholders(config: Any, keep: Keep = _known,
                 shapes: dict[str, Any] | None = None) -> list[str]:
    """Rewrite, in place, every layer `keep` refuses; the names of those rewritten."""
    shapes = output_shapes(config) if shapes is None else shapes
    rewritten: list[str] = []
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) else None
    for entry in layers if isinstance(layers, list) else []:
        if not isinstance(entry, dict):
            continue
        inner = entry.get("config")
        inner = inner if isinstance(inner, dict) else {}
        if entry.get("class_name") in MODEL_CLASSES or isinstance(inner.get("layers"), list):
            rewritten += placeholders(entry, keep, shapes)
            continue
        if entry.get("class_name") == PLACEHOLDER or keep(entry):
            continue
        name = str(inner.get("name", entry.get("name", "layer")))
        original = json.dumps(inner, default=repr, sort_keys=True)[:4000]
        shape = shapes.get(name) or inner.get("output_shape")  # a Lambda may say its own
        entry.update(class_name=PLACEHOLDER, module=None, registered_name=PLACEHOLDER,
                     config={"name": name, "original_class": str(entry.get("class_name")),
                             "original_config": original, "output_shape": shape})
        entry.pop("build_config", None)
        rewritten.append(name)
    return rewritten


def _from_zip(archive: zipfile.ZipFile, config: dict[str, Any]) -> Any:
    """The model from the archive's weights and this (rewritten) config."""
    from keras.src.saving import saving_lib

    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as out:
        for info in archive.infolist():
            data = (json.dumps(config).encode() if info.filename == "config.json"
                    else archive.read(info))
            out.writestr(info.filename, data)
    rebuilt.seek(0)
    return saving_lib.load_model(rebuilt, custom_objects={PLACEHOLDER: Unported},
                                 compile=False, safe_mode=True)


def load_keras(file: IO[bytes]) -> Loaded:
    """A `.keras` file (a zip: config.json, model.weights.h5), its config rewritten if need be."""
    from keras.src.saving import saving_lib

    with zipfile.ZipFile(file) as archive:
        config = json.loads(archive.read("config.json"))
        try:
            if placeholders(config):
                return Loaded(_from_zip(archive, config))
            file.seek(0)
            return Loaded(saving_lib.load_model(file, compile=False, safe_mode=True))
        except (TypeError, ValueError):
            if not placeholders(config, _builds_alone(legacy=False)):
                raise
            return Loaded(_from_zip(archive, config))


def _from_h5(f: Any, config: dict[str, Any], stand_ins: list[str]) -> Loaded:
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with saving_options.keras_option_scope(use_legacy_config=True), \
            serialization_lib.SafeModeScope(True):
        # A copy: Keras's legacy loader takes the config apart as it reads it.
        model = saving_utils.model_from_config(copy.deepcopy(config),
                                               custom_objects={PLACEHOLDER: Unported})
    weights = f.get("model_weights", f)
    # By name: the placeholders hold none of the weights the file has for them.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        legacy_h5_format.load_weights_from_hdf5_group_by_name(weights, model,
                                                              skip_mismatch=True)
    # Any other layer skipped (a nested model holding a placeholder) keeps Keras's
    # initial weights: the proof holds for those, not for the file's.
    skipped = [str(w.message) for w in caught if "Skipping loading" in str(w.message)
               and not any(f"(named {name})" in str(w.message) for name in stand_ins)]
    return Loaded(model, [f"weights not loaded from the file: {m}" for m in skipped])


def load_h5(file: IO[bytes]) -> Loaded:
    """A legacy `.h5` file: its config rewritten if need be, weights matched by layer name."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(file, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError("this .h5 file holds no model (only weights?): save the whole "
                             "model with model.save()")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        stand_ins = placeholders(config)
        try:
            if stand_ins:
                return _from_h5(f, config, stand_ins)
            return Loaded(legacy_h5_format.load_model_from_hdf5(f, compile=False,
                                                                safe_mode=True))
        except (TypeError, ValueError):
            more = placeholders(config, _builds_alone(legacy=True))
            if not more:
                raise
            return _from_h5(f, config, stand_ins + more)


def load_model_file(file: IO[bytes], suffix: str) -> Loaded:
    return load_keras(file) if suffix == ".keras" else load_h5(file)
