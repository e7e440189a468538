"""MultiHeadAttention (nn.MultiheadAttention where one can express the other), Attention
and AdditiveAttention; Keras's masks, given or read off the inputs, and causal masks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap, repeat
from ._util import array

IN_PROJ = Trap("mha-in-proj", "Keras's query, key and value kernels (embed, heads, key_dim) "
               "are stacked, transposed, into in_proj_weight")
SEPARATE_PROJ = Trap("mha-in-proj", "key and value widths differ from the query's: Keras's "
                     "kernels (in, heads, key_dim) go, transposed, to q/k/v_proj_weight")
BATCH_FIRST = Trap("mha-batch-first", "Keras takes (batch, seq, embed); without batch_first "
                   "torch reads (seq, batch, embed)")
MASK = Trap("attention-mask", "Keras's mask is True where a query may attend; torch's "
            "boolean attn_mask is True where it may not: passed as -1e9 per head", "forward")


def projection(dense: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """An EinsumDense of kernel (in, heads, dim) as Linear's weight (heads * dim, in)."""
    kernel = array(dense.kernel)
    bias = array(dense.bias).reshape(-1) if dense.bias is not None else None
    return np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T), bias


def places(site: Site) -> dict[str, int]:
    """Each input's index by its role: query, value, key, and the masks."""
    positional = ("query", "value", "key")
    found: dict[str, int] = {}
    for i, role in enumerate(site.roles):
        found[positional[int(role)] if role.isdigit() and int(role) < 3 else role] = i
    return found


def mha_call(layer: Any, site: Site, at: dict[str, int]) -> str | None:
    """`{m}(query, key, value, ...)`, with attn_mask when Keras masks anything."""
    if set(at) - {"query", "value", "key", "query_mask", "value_mask", "key_mask",
                  "attention_mask"} or set(site.options) - {"use_causal_mask",
                                                             "return_attention_scores"}:
        return None
    x = {role: f"{{x{i}}}" for role, i in at.items()}
    key = x.get("key", x["value"])
    # Keras's scores are each head's own weights: torch averages them unless told not to.
    weights = ("need_weights=True, average_attn_weights=False"
               if "return_attention_scores" in site.options else "need_weights=False")
    call = f"{{m}}({x['query']}, {key}, {x['value']}, {weights}"
    allowed = [x["query_mask"] + "[:, :, None]"] if "query_mask" in x else []
    allowed += [x[m] + "[:, None, :]" for m in ("value_mask", "key_mask") if m in x]
    allowed += [x["attention_mask"]] if "attention_mask" in x else []
    causal = "use_causal_mask" in site.options
    if allowed or causal:
        mask = " & ".join(allowed) or "None"
        call += (f", attn_mask=attention_bias({mask}, {layer.num_heads}, {x['query']}, {key}"
                 f"{', causal=True' if causal else ''})")
    return call + ")"


def multi_head_attention(layer: Any, site: Site) -> Converted | None:
    at = places(site)
    if "query" not in at or "value" not in at:
        return None
    call = mha_call(layer, site, at)
    dims = tuple(site.in_shapes[at.get(r, at["value"])][-1] for r in ("query", "key", "value"))
    out_dim = layer._output_shape or dims[0]
    out_dim = out_dim[0] if isinstance(out_dim, list | tuple) and len(out_dim) == 1 else out_dim
    if (call is None or None in dims or not isinstance(out_dim, int)
            or any(len(site.in_shapes[at[r]]) != 3 for r in ("query", "value"))
            or layer._attention_axes not in (None, (1,)) or getattr(layer, "_use_gate", False)
            or getattr(layer, "_sliding_window", None) is not None):
        return None
    post = "{y}" if "return_attention_scores" in site.options else "{y}[0]"
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    parts = [projection(d) for d in (layer._query_dense, layer._key_dense, layer._value_dense)]
    out_w = array(layer._output_dense.kernel).reshape(heads * value_dim, -1).T
    out_b = array(layer._output_dense.bias) if layer._output_dense.bias is not None else None
    bias = layer._use_bias
    wants = repeat("cl", len(site.roles))
    helpers = ("attention_bias",) if "attention_bias" in call else ()
    traps = [MASK] if "attention_bias" in call else []
    embed = dims[0]
    if heads * key_dim == embed and value_dim == key_dim and out_dim == embed:
        weights: dict[str, np.ndarray] = {}
        if dims[1] == dims[2] == embed:
            weights["in_proj_weight"] = np.concatenate([w for w, _ in parts])
        else:
            weights |= {f"{n}_proj_weight": w for n, (w, _) in zip("qkv", parts, strict=True)}
        if bias:
            weights["in_proj_bias"] = np.concatenate([b for _, b in parts if b is not None])
            weights["out_proj.bias"] = out_b if out_b is not None else np.zeros(embed, np.float32)
        weights["out_proj.weight"] = np.ascontiguousarray(out_w)
        extra = "" if dims[1] == dims[2] == embed else f", kdim={dims[1]}, vdim={dims[2]}"
        extra += "" if bias else ", bias=False"
        in_proj = IN_PROJ if "in_proj_weight" in weights else SEPARATE_PROJ
        return Converted(f"nn.MultiheadAttention({embed}, {heads}, batch_first=True{extra})",
                         wants, "cl", weights, call=call, post=post,
                         traps=[in_proj, BATCH_FIRST, *traps], helpers=helpers)
    weights = {}
    for name, (w, b) in zip(("query", "key", "value"), parts, strict=True):
        weights[f"{name}.weight"] = w
        if b is not None:
            weights[f"{name}.bias"] = b
    weights["output.weight"] = np.ascontiguousarray(out_w)
    if out_b is not None:
        weights["output.bias"] = out_b
    args = f"{dims!r}, {heads}, {key_dim}, {value_dim}, {out_dim}"
    args += "" if bias else ", bias=False"
    return Converted(f"MultiHeadAttention({args})", wants, "cl", weights, call=call,
                     post=post, traps=traps, helpers=("MultiHeadAttention", *helpers))


def attention(layer: Any, site: Site) -> Converted | None:
    """Attention and AdditiveAttention: inputs [query, value, key?], masks [query, value]."""
    inputs = [i for i, r in enumerate(site.roles) if r == "0"]
    masks = {r: i for i, r in enumerate(site.roles) if r.endswith("_mask")}
    given = [i for i, r in enumerate(site.roles) if r == "mask"]
    if len(given) == 2:  # mask=[query_mask, value_mask], both given
        masks = {"query_mask": given[0], "value_mask": given[1]}
    if (len(given) not in (0, 2) or len(inputs) not in (2, 3)
            or set(site.options) - {"use_causal_mask"} or len(site.in_shapes[0]) != 3):
        return None
    args = [f"{{x{i}}}" for i in inputs]
    args += [f"{role}={{x{i}}}" for role, i in sorted(masks.items())]
    args += ["causal=True"] if "use_causal_mask" in site.options else []
    additive = type(layer).__name__ == "AdditiveAttention"
    mode = "additive" if additive else layer.score_mode
    weights = {}
    if layer.use_scale:
        weights["scale"] = array(layer.scale)
    if mode == "concat":
        weights["concat_score_weight"] = array(layer.concat_score_weight)
    dim = site.in_shapes[0][-1]
    return Converted(f"Attention({mode!r}, {dim}, use_scale={bool(layer.use_scale)!r})",
                     repeat("cl", len(site.roles)), "cl", weights,
                     call=f"{{m}}({', '.join(args)})", helpers=("Attention",))


CONVERTERS = {"MultiHeadAttention": multi_head_attention, "Attention": attention,
              "AdditiveAttention": attention}
