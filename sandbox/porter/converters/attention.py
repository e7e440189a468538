"""MultiHeadAttention as nn.MultiheadAttention, where one can express the other."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap, repeat
from ._util import array

IN_PROJ = Trap("mha-in-proj", "Keras's query, key and value kernels (embed, heads, key_dim) "
               "are stacked, transposed, into in_proj_weight")
BATCH_FIRST = Trap("mha-batch-first", "Keras takes (batch, seq, embed); without batch_first "
                   "torch reads (seq, batch, embed)")


def projection(dense: Any, embed: int) -> tuple[np.ndarray, np.ndarray]:
    """An EinsumDense of kernel (embed, heads, key_dim) as Linear's weight and bias."""
    kernel = array(dense.kernel)
    return kernel.reshape(embed, -1).T, array(dense.bias).reshape(-1)


def multi_head_attention(layer: Any, site: Site) -> Converted | None:
    embed = site.in_shapes[0][-1]
    heads, key_dim = layer.num_heads, layer.key_dim
    same_dims = all(len(s) == 3 and s[-1] == embed for s in site.in_shapes)
    if (not same_dims or embed is None or heads * key_dim != embed
            or (layer.value_dim or key_dim) != key_dim or layer._output_shape is not None
            or layer._attention_axes not in (None, (1,)) or not layer._use_bias
            or set(site.roles) - {"0", "1", "2", "key"} or site.options):
        return None
    parts = [projection(d, embed) for d in (layer._query_dense, layer._key_dense,
                                            layer._value_dense)]
    out_kernel = array(layer._output_dense.kernel).reshape(-1, embed)
    weights = {"in_proj_weight": np.concatenate([w for w, _ in parts]),
               "in_proj_bias": np.concatenate([b for _, b in parts]),
               "out_proj.weight": np.ascontiguousarray(out_kernel.T),
               "out_proj.bias": array(layer._output_dense.bias)}
    key = "{x2}" if len(site.roles) == 3 else "{x1}"
    return Converted(f"nn.MultiheadAttention({embed}, {heads}, batch_first=True)",
                     repeat("cl", len(site.roles)), "cl", weights,
                     call=f"{{m}}({{x0}}, {key}, {{x1}}, need_weights=False)", post="{y}[0]",
                     traps=[IN_PROJ, BATCH_FIRST])


CONVERTERS = {"MultiHeadAttention": multi_head_attention}
