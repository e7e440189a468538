"""Max and average pooling 1D/2D/3D (valid and same), global pooling."""

from __future__ import annotations

from typing import Any

from ..converted import Converted, Site, Trap
from ._util import channels_last, held, size

SAME_MAX = Trap("pool-same-padding", "TF's \"same\" pads the odd cell at the end, with -inf "
                "for max: by hand", "forward")
SAME_AVG = Trap("pool-same-padding", "TF's \"same\" average counts only real cells and pads "
                "the odd cell at the end")
SAME_AVG_SYMMETRIC = Trap("pool-same-padding", "Keras's \"same\" average counts only real "
                          "cells: count_include_pad=False")


def args(kernel: tuple[int, ...], stride: tuple[int, ...]) -> str:
    return size(kernel) if kernel == stride else f"{size(kernel)}, stride={size(stride)}"


def pool(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if n not in (1, 2, 3):
        return None
    lay = held(layer)
    kernel, stride = tuple(layer.pool_size), tuple(layer.strides)
    is_max = "Max" in type(layer).__name__
    if layer.padding == "valid":
        module = f"nn.{'Max' if is_max else 'Avg'}Pool{n}d({args(kernel, stride)})"
        return Converted(module, (lay,), lay)
    if all(s == 1 for s in stride) and all(k % 2 for k in kernel):  # symmetric padding
        pad = size(tuple(k // 2 for k in kernel))
        if is_max:
            return Converted(f"nn.MaxPool{n}d({size(kernel)}, stride=1, padding={pad})",
                             (lay,), lay)
        return Converted(f"nn.AvgPool{n}d({size(kernel)}, stride=1, padding={pad}, "
                         "count_include_pad=False)", (lay,), lay, traps=[SAME_AVG_SYMMETRIC])
    if is_max:
        source = (f"F.pad({{x0}}, tf_same_pad({{x0}}, {kernel!r}, {stride!r}, {(1,) * n!r}), "
                  "value=-torch.inf)")
        return Converted(f"nn.MaxPool{n}d({args(kernel, stride)})", (lay,), lay,
                         call=f"{{m}}({source})", traps=[SAME_MAX], helpers=("tf_same_pad",))
    return Converted(f"TFAvgPoolSame({kernel!r}, {stride!r})", (lay,), lay,
                     traps=[SAME_AVG], helpers=("TFAvgPoolSame",))


def global_pool(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if n not in (1, 2, 3):
        return None
    lay = held(layer)
    kind = "Max" if "Max" in type(layer).__name__ else "Avg"
    if site.roles[1:] == ("mask",):
        if kind == "Max" or n != 1 or not channels_last(layer):  # the others take no mask
            return None
        return Converted(f"MaskedAveragePooling1D(keepdims={bool(layer.keepdims)!r})",
                         ("cl", "cl"), "cl", helpers=("MaskedAveragePooling1D",))
    module = f"nn.Adaptive{kind}Pool{n}d(1)"
    if layer.keepdims:
        return Converted(module, (lay,), lay)
    return Converted(module, (lay,), "cl", post="{y}.flatten(1)")


CONVERTERS = {
    "MaxPooling1D": pool, "MaxPooling2D": pool, "AveragePooling1D": pool,
    "AveragePooling2D": pool, "MaxPooling3D": pool, "AveragePooling3D": pool,
    "GlobalAveragePooling1D": global_pool, "GlobalAveragePooling2D": global_pool,
    "GlobalAveragePooling3D": global_pool, "GlobalMaxPooling1D": global_pool,
    "GlobalMaxPooling2D": global_pool, "GlobalMaxPooling3D": global_pool,
}
