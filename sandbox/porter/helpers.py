"""Fixed source blocks the generated file defines when a layer needs them.

They are written out in the file (not imported) so that model.py stands alone.
"""

from __future__ import annotations

from .attention_blocks import BLOCKS as ATTENTION_BLOCKS
from .recurrent_blocks import BLOCKS as RECURRENT_BLOCKS

BLOCKS: dict[str, str] = {**RECURRENT_BLOCKS, **ATTENTION_BLOCKS}
NEEDS: dict[str, tuple[str, ...]] = {"TFAvgPoolSame": ("tf_same_pad",)}

BLOCKS["tf_same_pad"] = '''
def tf_same_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...]) -> tuple[int, ...]:
    """F.pad's argument for TensorFlow's "same": any odd pixel goes to the end."""
    pads: list[int] = []
    for axis in reversed(range(len(kernel))):  # F.pad lists the last axis first
        size = x.shape[2 + axis]
        reach = (kernel[axis] - 1) * dilation[axis] + 1
        out = -(-size // stride[axis])
        total = max((out - 1) * stride[axis] + reach - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)
'''

BLOCKS["TFAvgPoolSame"] = '''
class TFAvgPoolSame(nn.Module):
    """Keras average pooling with padding="same": the mean of the real cells only."""

    def __init__(self, kernel_size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = tf_same_pad(x, self.kernel_size, self.stride, (1,) * len(self.kernel_size))
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(self.kernel_size) - 1]
        total = pool(F.pad(x, pads), self.kernel_size, self.stride)
        count = pool(F.pad(torch.ones_like(x[:, :1]), pads), self.kernel_size, self.stride)
        return total / count
'''

BLOCKS["Reshape"] = '''
class Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)
'''

BLOCKS["TimeDistributed"] = '''
class TimeDistributed(nn.Module):
    """Keras TimeDistributed: the inner layer on each step, the steps folded into the
    batch (and, for a layer that wants channels first, the channels moved there and back)."""

    def __init__(self, layer: nn.Module, channels_first: bool = False) -> None:
        super().__init__()
        self.layer, self.channels_first = layer, channels_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.flatten(0, 1)
        y = self.layer(steps.movedim(-1, 1) if self.channels_first else steps)
        if self.channels_first and y.dim() > 2:
            y = y.movedim(1, -1)
        return y.unflatten(0, x.shape[:2])
'''

BLOCKS["RepeatVector"] = '''
class RepeatVector(nn.Module):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, self.n, -1)
'''

BLOCKS["Permute"] = '''
class Permute(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *self.dims)
'''

LOOP = "out = xs[0]\n        for x in xs[1:]:\n            out = out {op} x\n        return out"
MERGES = {
    "Add": LOOP.format(op="+"),
    "Multiply": LOOP.format(op="*"),
    "Subtract": "return xs[0] - xs[1]",
    "Average": "return torch.stack(xs).mean(0)",
    "Maximum": "return torch.stack(xs).amax(0)",
    "Minimum": "return torch.stack(xs).amin(0)",
}
for _name, _body in MERGES.items():
    BLOCKS[_name] = f'''
class {_name}(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        {_body}
'''

BLOCKS["Dot"] = '''
class Dot(nn.Module):
    """Keras Dot: per sample, the sum of products over axis a of x and axis b of y (each
    first scaled to unit length if normalize); x's other axes, then y's, remain, and
    two vectors give (batch, 1)."""

    def __init__(self, axes: tuple[int, int], normalize: bool = False) -> None:
        super().__init__()
        self.axes, self.normalize = axes, normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = self.axes
        if self.normalize:  # Keras's l2_normalize: epsilon 1e-7 on the norm
            x, y = F.normalize(x, dim=a, eps=1e-7), F.normalize(y, dim=b, eps=1e-7)
        x, y = x.movedim(a, -1), y.movedim(b, 1)
        n, d = x.shape[0], x.shape[-1]
        out = x.reshape(n, -1, d) @ y.reshape(n, d, -1)
        out = out.reshape(n, *x.shape[1:-1], *y.shape[2:])
        return out if out.dim() > 1 else out[:, None]
'''

BLOCKS["Concatenate"] = '''
class Concatenate(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)
'''

BLOCKS["KerasStub"] = '''
class KerasStub(nn.Module):
    """A Keras layer the porter could not convert: write its forward by hand."""

    def __init__(self, layer_name: str, class_name: str, config: str, reason: str = "") -> None:
        super().__init__()
        self.layer_name, self.class_name, self.config = layer_name, class_name, config
        self.reason = reason

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            f"port the Keras layer {self.layer_name!r} ({self.class_name}) by hand "
            f"({self.reason}); its config: {self.config}")
'''


def needed(names: set[str]) -> list[str]:
    """The blocks for `names` and what they use, each once, dependencies first."""
    order: list[str] = []
    for name in sorted(names):
        for dep in (*NEEDS.get(name, ()), name):
            if dep not in order:
                order.append(dep)
    return order

BLOCKS["SeparableConv"] = '''
class SeparableConv(nn.Module):
    """Keras SeparableConv: a depthwise convolution, then a 1x1 one mixing the channels."""

    def __init__(self, depthwise: nn.Module, pointwise: nn.Module) -> None:
        super().__init__()
        self.depthwise, self.pointwise = depthwise, pointwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))
'''

BLOCKS["Rescaling"] = '''
class Rescaling(nn.Module):
    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset
'''

BLOCKS["Normalization"] = '''
class Normalization(nn.Module):
    """Keras Normalization: the adapted mean and variance, kept as buffers."""

    def __init__(self, shape: tuple[int, ...], epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("variance", torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.variance.sqrt().clamp(min=self.epsilon)
'''

BLOCKS["LayerScale"] = '''
class LayerScale(nn.Module):
    """ConvNeXt's per-channel scale of a residual branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
'''
