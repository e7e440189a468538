"""An untrusted model file in, a Keras model out: safe mode, and placeholders for the rest.

Runs in the sandbox. The file arrives as an open descriptor (`job.py`), read
through a file object: Keras's own `.keras` loader takes one, and h5py opens
one for `.h5`. Both loaders run in safe mode: a Lambda's marshalled bytecode
is refused in `.keras` and, since Keras 3, in legacy `.h5` too.

Layers Keras can't (or mustn't) build from the file: Lambda, and classes it
doesn't know (a custom Layer subclass). Refusing them would refuse the whole
model, so their configs are rewritten to `Unported`, a placeholder that
passes its first input through and restores none of its weights. It carries
the layer's original class name (its Python class is named after it) and
config, so the porter writes a stub for it, the report lists it, and the
proof covers everything before it. Nothing of the original layer's code is
ever looked up or run.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

import keras

PLACEHOLDER = "SidebysideUnported"
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
_CLASS_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Loaded:
    model: Any
    notes: list[str] = field(default_factory=list)  # what the report should say of the load


class Unported(keras.layers.Layer):
    """Stands in for a layer that can't be built safely: its first input, unchanged."""

    def __init__(self, name: str | None = None, original_class: str = "Layer",
                 original_config: str = "{}", **_: Any) -> None:
        super().__init__(name=name)
        self.original_class, self.original_config = original_class, original_config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Unported:
        original = str(config.get("original_class", "Layer"))
        # Named after the layer it replaces: the stub and the report say which it was.
        short = original.rsplit(">", 1)[-1]  # a registered name: "package>Class"
        named = type(_CLASS_NAME.sub("_", short)[:64] or "Layer", (cls,), {})
        return named(name=config.get("name"), original_class=original,
                     original_config=str(config.get("original_config", "{}")))

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return inputs[0] if isinstance(inputs, list | tuple) else inputs

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


def placeholders(config: Any) -> list[str]:
    """Rewrite, in place, every layer `_known` refuses; the names of those rewritten."""
    rewritten: list[str] = []
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) else None
    for entry in layers if isinstance(layers, list) else []:
        if not isinstance(entry, dict):
            continue
        inner = entry.get("config")
        inner = inner if isinstance(inner, dict) else {}
        if entry.get("class_name") in MODEL_CLASSES or isinstance(inner.get("layers"), list):
            rewritten += placeholders(entry)
            continue
        if _known(entry):
            continue
        name = str(inner.get("name", entry.get("name", "layer")))
        original = json.dumps(inner, default=repr, sort_keys=True)[:4000]
        entry.update(class_name=PLACEHOLDER, module=None, registered_name=PLACEHOLDER,
                     config={"name": name, "original_class": str(entry.get("class_name")),
                             "original_config": original})
        entry.pop("build_config", None)
        rewritten.append(name)
    return rewritten


def load_keras(file: IO[bytes]) -> Loaded:
    """A `.keras` file (a zip: config.json, model.weights.h5), its config rewritten if need be."""
    from keras.src.saving import saving_lib

    with zipfile.ZipFile(file) as archive:
        config = json.loads(archive.read("config.json"))
        if not placeholders(config):
            file.seek(0)
            return Loaded(saving_lib.load_model(file, compile=False, safe_mode=True))
        rebuilt = io.BytesIO()
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as out:
            for info in archive.infolist():
                data = (json.dumps(config).encode() if info.filename == "config.json"
                        else archive.read(info))
                out.writestr(info.filename, data)
    rebuilt.seek(0)
    return Loaded(saving_lib.load_model(rebuilt, custom_objects={PLACEHOLDER: Unported},
                                        compile=False, safe_mode=True))


def load_h5(file: IO[bytes]) -> Loaded:
    """A legacy `.h5` file: its config rewritten if need be, weights matched by layer name."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with h5py.File(file, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError("this .h5 file holds no model (only weights?): save the whole "
                             "model with model.save()")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        stand_ins = placeholders(config)
        if not stand_ins:
            return Loaded(legacy_h5_format.load_model_from_hdf5(f, compile=False,
                                                                safe_mode=True))
        with saving_options.keras_option_scope(use_legacy_config=True), \
                serialization_lib.SafeModeScope(True):
            model = saving_utils.model_from_config(config,
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


def load_model_file(file: IO[bytes], suffix: str) -> Loaded:
    return load_keras(file) if suffix == ".keras" else load_h5(file)
