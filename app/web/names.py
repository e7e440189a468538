"""TensorFlow names and their PyTorch counterparts: one table, shown at /names.

It serves two readers. A learner who types a TensorFlow name on the
PyTorch side (`torch.reduce_sum`) gets "did you mean `torch.sum`?" under
the error, with a link to the row; a lesson links to the page. Every
PyTorch name here is checked against the installed torch by a test.
"""

from __future__ import annotations

import dataclasses
import re

from markupsafe import Markup, escape

from sandbox.protocol import ErrorInfo, Framework


@dataclasses.dataclass(frozen=True)
class Name:
    tensorflow: str  # as a TensorFlow user writes it
    pytorch: str  # what PyTorch calls it; "torch.x" or "Tensor.x"
    note: str = ""  # what differs beyond the name

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.tensorflow.lower()).strip("-")

    @property
    def note_html(self) -> Markup:
        """The note, escaped, with its `code` spans as <code>."""
        return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(self.note))))

    @property
    def attribute(self) -> str:
        """The last part of the TensorFlow name: what `torch.<it>` would fail on."""
        return self.tensorflow.rpartition(".")[2].removesuffix("()")


TABLE: tuple[Name, ...] = (
    Name("tf.reduce_sum", "torch.sum", "`axis=` is `dim=`, `keepdims=` is `keepdim=`"),
    Name("tf.reduce_mean", "torch.mean", "`axis=` is `dim=`; integer tensors need a float dtype"),
    Name("tf.reduce_max", "torch.amax", "`torch.max(x, dim)` also returns the indices"),
    Name("tf.reduce_min", "torch.amin", "`torch.min(x, dim)` also returns the indices"),
    Name("tf.reduce_prod", "torch.prod", "one `dim` at a time"),
    Name("tf.reduce_any", "torch.any"),
    Name("tf.reduce_all", "torch.all"),
    Name("tf.reduce_logsumexp", "torch.logsumexp", "`dim` is required"),
    Name("tf.concat", "torch.cat", "`axis=` is `dim=`"),
    Name("tf.expand_dims", "torch.unsqueeze"),
    Name("tf.squeeze", "torch.squeeze"),
    Name("tf.transpose", "torch.permute", "`torch.transpose` swaps exactly two dims"),
    Name("tf.reshape", "torch.reshape", "`Tensor.view` when the memory is contiguous"),
    Name("tf.matmul", "torch.matmul"),
    Name("tf.tensordot", "torch.tensordot"),
    Name("tf.einsum", "torch.einsum"),
    Name("tf.gather", "torch.index_select", "or indexing: `x[idx]` for axis 0"),
    Name("tf.gather_nd", "Tensor.__getitem__", "indexing with one index tensor per axis: "
         "`x[idx[:, 0], idx[:, 1]]`"),
    Name("tf.experimental.numpy.take_along_axis", "torch.take_along_dim",
         "`torch.gather` too, with an index as large as the output"),
    Name("tf.where", "torch.where", "with one argument: `torch.nonzero`"),
    Name("tf.tile", "torch.tile"),
    Name("tf.repeat", "torch.repeat_interleave", "`Tensor.repeat` tiles instead"),
    Name("tf.fill", "torch.full"),
    Name("tf.zeros_like", "torch.zeros_like"),
    Name("tf.ones_like", "torch.ones_like"),
    Name("tf.range", "torch.arange"),
    Name("tf.linspace", "torch.linspace"),
    Name("tf.one_hot", "torch.nn.functional.one_hot", "needs int64 indices; returns int64"),
    Name("tf.cast", "Tensor.to", "`x.to(torch.float32)`, or `x.float()`"),
    Name("tf.clip_by_value", "torch.clamp"),
    Name("tf.math.log", "torch.log"),
    Name("tf.math.pow", "torch.pow"),
    Name("tf.math.sqrt", "torch.sqrt"),
    Name("tf.math.abs", "torch.abs"),
    Name("tf.math.maximum", "torch.maximum"),
    Name("tf.math.minimum", "torch.minimum"),
    Name("tf.math.argmax", "torch.argmax", "`axis=` is `dim=`"),
    Name("tf.math.top_k", "torch.topk"),
    Name("tf.math.cumsum", "torch.cumsum", "`dim` is required"),
    Name("tf.math.floordiv", "torch.floor_divide"),
    Name("tf.math.sigmoid", "torch.sigmoid"),
    Name("tf.math.softplus", "torch.nn.functional.softplus"),
    Name("tf.nn.softmax", "torch.softmax",
         "`dim` is required; TensorFlow's default is the last axis"),
    Name("tf.nn.relu", "torch.relu"),
    Name("tf.nn.gelu", "torch.nn.functional.gelu", "Keras's default is exact; so is torch's"),
    Name("tf.nn.dropout", "torch.nn.functional.dropout", "`rate=` is `p=`; pass `training=`"),
    Name("tf.convert_to_tensor", "torch.as_tensor", "`torch.tensor` always copies"),
    Name("tf.constant", "torch.tensor"),
    Name("tf.Variable", "torch.nn.Parameter", "or a tensor with `requires_grad=True`"),
    Name("tf.GradientTape", "Tensor.backward", "`torch.autograd.grad` for a gradient you get back"),
    Name("tf.stop_gradient", "Tensor.detach"),
    Name("tf.shape", "Tensor.size", "`x.shape` works in both"),
    Name("tf.rank", "Tensor.dim"),
    Name("tf.size", "Tensor.numel"),
    Name("tf.function", "torch.compile"),
    Name("tf.random.normal", "torch.randn", "`torch.normal(mean, std, size)` with a mean and std"),
    Name("tf.random.uniform", "torch.rand", "`torch.rand` is [0, 1) only"),
    Name("tf.random.set_seed", "torch.manual_seed"),
    Name("tf.keras.layers.Dense", "torch.nn.Linear", "the input size is explicit"),
    Name("tf.keras.layers.Conv2D", "torch.nn.Conv2d", "channels first: (N, C, H, W)"),
    Name("tf.keras.layers.Flatten", "torch.nn.Flatten", "channels-first order of the features"),
    Name("tf.keras.layers.BatchNormalization", "torch.nn.BatchNorm2d",
         "momentum 0.99 in Keras is 0.01 in PyTorch; epsilon 1e-3 vs 1e-5"),
    Name("tf.keras.layers.Embedding", "torch.nn.Embedding"),
    Name("tf.keras.layers.LSTM", "torch.nn.LSTM", "`batch_first=True` for Keras's layout"),
    Name("tf.keras.layers.GRU", "torch.nn.GRU", "only `reset_after=True` matches"),
    Name("tf.keras.layers.Dropout", "torch.nn.Dropout"),
    Name("tf.keras.Sequential", "torch.nn.Sequential"),
    Name("tf.keras.Model", "torch.nn.Module"),
    Name("tf.keras.losses.SparseCategoricalCrossentropy", "torch.nn.CrossEntropyLoss",
         "takes logits; `from_logits=True` on the Keras side"),
    Name("tf.keras.losses.MeanSquaredError", "torch.nn.MSELoss"),
    Name("tf.keras.optimizers.Adam", "torch.optim.Adam", "epsilon 1e-7 in Keras, 1e-8 in PyTorch"),
    Name("tf.keras.optimizers.SGD", "torch.optim.SGD"),
    Name("tf.data.Dataset", "torch.utils.data.DataLoader", "over a `Dataset`"),
)

# Attribute-error messages the two frameworks and Python raise for a missing name.
_MISSING = (
    re.compile(r"module '(?P<owner>torch(?:\.[\w.]+)?)' has no attribute '(?P<name>\w+)'"),
    re.compile(r"'(?P<owner>Tensor|Parameter)' object has no attribute '(?P<name>\w+)'"),
)


def _by_attribute() -> dict[str, Name]:
    found: dict[str, Name] = {}
    for name in TABLE:
        found.setdefault(name.attribute, name)
    return found


BY_ATTRIBUTE = _by_attribute()


@dataclasses.dataclass(frozen=True)
class Suggestion:
    typed: str  # what the snippet asked for
    name: Name  # the row that answers it


def did_you_mean(error: ErrorInfo | None, side: Framework) -> Suggestion | None:
    """On the PyTorch side, a TensorFlow name where a torch one belongs: its row."""
    if error is None or side != "pytorch" or error.type != "AttributeError":
        return None
    for pattern in _MISSING:
        found = pattern.search(error.message)
        if found and found["name"] in BY_ATTRIBUTE:
            return Suggestion(f"{found['owner']}.{found['name']}", BY_ATTRIBUTE[found["name"]])
    return None
