"""Keras model files as a notebook saves them, made in a process of their own (the
tests' process never imports TensorFlow: the live server's pool forks beside it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A small image classifier with the traps a first port meets: a strided "same"
# convolution, BatchNormalization, Flatten after channels-last convolutions, Dense.
TINY_CNN = """
import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((8, 8, 3)),
    keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv"),
    keras.layers.BatchNormalization(name="bn"),
    keras.layers.Flatten(name="flatten"),
    keras.layers.Dense(5, activation="softmax", name="head"),
], name="tiny_cnn")
"""


def save_keras_model(path: Path, source: str = TINY_CNN) -> Path:
    """`source` builds `model`; it is saved to `path` (.keras or .h5) by Keras itself."""
    script = f"{source}\nmodel.save({str(path)!r})\n"
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                   timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    return path
