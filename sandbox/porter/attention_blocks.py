"""Source blocks for attention layers: Keras's masks as torch's float mask, a
MultiHeadAttention nn.MultiheadAttention cannot express, and Attention /
AdditiveAttention. helpers.BLOCKS takes them in."""

from __future__ import annotations

BLOCKS: dict[str, str] = {}

BLOCKS["attention_bias"] = '''
def attention_bias(allowed: torch.Tensor | None, heads: int, query: torch.Tensor,
                   key: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Keras's boolean attention mask (True: attend; it broadcasts to (batch, T, S)) as
    nn.MultiheadAttention's float one, one per head: -1e9 where masked, as Keras's softmax
    has it, so a query with nothing to attend to attends evenly (a boolean mask gives NaN)."""
    shape = (query.shape[0], query.shape[1], key.shape[1])
    mask = torch.ones(shape, dtype=torch.bool, device=query.device)
    if allowed is not None:
        mask = mask & allowed.bool()
    if causal:  # step t sees steps <= t
        mask = mask & torch.ones(shape[1:], dtype=torch.bool, device=query.device).tril()
    bias = torch.zeros(shape, device=query.device).masked_fill(~mask, -1e9)
    return bias.repeat_interleave(heads, dim=0)
'''

BLOCKS["MultiHeadAttention"] = '''
class MultiHeadAttention(nn.Module):
    """Keras MultiHeadAttention where nn.MultiheadAttention cannot say it (value_dim !=
    key_dim, an output_shape, heads * key_dim != the query's width). Same call as
    nn.MultiheadAttention with batch_first=True."""

    def __init__(self, dims: tuple[int, int, int], heads: int, key_dim: int, value_dim: int,
                 out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        query_in, key_in, value_in = dims
        self.query = nn.Linear(query_in, heads * key_dim, bias=bias)
        self.key = nn.Linear(key_in, heads * key_dim, bias=bias)
        self.value = nn.Linear(value_in, heads * value_dim, bias=bias)
        self.output = nn.Linear(heads * value_dim, out_dim, bias=bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: torch.Tensor | None = None, need_weights: bool = False,
                average_attn_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, t, s = query.shape[0], query.shape[1], key.shape[1]
        q = self.query(query).view(b, t, self.heads, self.key_dim).transpose(1, 2)
        k = self.key(key).view(b, s, self.heads, self.key_dim).transpose(1, 2)
        v = self.value(value).view(b, s, self.heads, self.value_dim).transpose(1, 2)
        scores = (q / self.key_dim ** 0.5) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask.view(b, self.heads, t, s)
        weights = scores.softmax(dim=-1)  # (batch, heads, T, S)
        out = self.output((weights @ v).transpose(1, 2).reshape(b, t, -1))
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights
'''

BLOCKS["Attention"] = '''
class Attention(nn.Module):
    """Keras Attention (score_mode "dot" or "concat") and AdditiveAttention ("additive"):
    scores of each query against each key, masked, softmaxed over the keys, applied to
    the values; a masked query gives zeros."""

    def __init__(self, score_mode: str, dim: int, use_scale: bool) -> None:
        super().__init__()
        self.score_mode = score_mode
        shape = (dim,) if score_mode == "additive" else ()
        self.scale = nn.Parameter(torch.ones(shape)) if use_scale else None
        self.concat_score_weight = (nn.Parameter(torch.ones(()))
                                    if score_mode == "concat" else None)

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.score_mode == "dot":
            scores = query @ key.transpose(-2, -1)
            return scores if self.scale is None else scores * self.scale
        pairs = query[:, :, None, :] + key[:, None, :, :]
        if self.score_mode == "additive":
            scale = 1.0 if self.scale is None else self.scale
            return (scale * torch.tanh(pairs)).sum(dim=-1)
        scaled = pairs if self.scale is None else self.scale * pairs
        return self.concat_score_weight * torch.tanh(scaled).sum(dim=-1)

    def forward(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
                query_mask: torch.Tensor | None = None, value_mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        scores = self.scores(query, value if key is None else key)
        allowed = torch.ones_like(scores, dtype=torch.bool)
        if value_mask is not None:
            allowed = allowed & value_mask[:, None, :].bool()
        if causal:  # step t sees steps <= t
            allowed = allowed & torch.ones_like(allowed[0]).tril()
        scores = torch.where(allowed, scores, scores - 1e9)
        out = scores.softmax(dim=-1) @ value
        if query_mask is not None:
            out = torch.where(query_mask[..., None].bool(), out, 0.0)
        return out
'''
