"""Source blocks for recurrent layers nn.LSTM/GRU/RNN cannot express on their own: a
Keras mask, go_backwards, initial and returned states, GRU(reset_after=False), and
Bidirectional around any of them. helpers.BLOCKS takes them in."""

from __future__ import annotations

BLOCKS: dict[str, str] = {}

BLOCKS["Recurrent"] = '''
class Recurrent(nn.Module):
    """A Keras recurrent layer as a loop over a torch cell. Returns Keras's output (the
    sequence, or the last step) then the final states. Where the mask is False a step
    keeps the states and repeats the previous output (zeros if zero_masked, as inside
    Bidirectional); go_backwards reads from the end and returns the steps in that order."""

    def __init__(self, cell: nn.Module, return_sequences: bool, go_backwards: bool = False,
                 zero_masked: bool = False) -> None:
        super().__init__()
        self.cell = cell
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.zero_masked = zero_masked

    def forward(self, x: torch.Tensor, *states: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        lstm = isinstance(self.cell, nn.LSTMCell) or type(self.cell).__name__ == "KerasLSTMCell"
        if not states:
            zeros = x.new_zeros(x.shape[0], self.cell.hidden_size)
            states = (zeros, zeros) if lstm else (zeros,)
        if self.go_backwards:
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        output = x.new_zeros(x.shape[0], self.cell.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            new = self.cell(x[:, t], states) if lstm else (self.cell(x[:, t], states[0]),)
            step = new[0]
            if mask is not None:
                keep = mask[:, t, None].bool()
                new = tuple(torch.where(keep, n, s) for n, s in zip(new, states, strict=True))
                held = torch.zeros_like(step) if self.zero_masked else output
                step = torch.where(keep, step, held)
            states, output = tuple(new), step
            outputs.append(output)
        return (torch.stack(outputs, dim=1) if self.return_sequences else output, *states)
'''

BLOCKS["GRUResetBeforeCell"] = '''
class GRUResetBeforeCell(nn.Module):
    """Keras GRU(reset_after=False), which nn.GRUCell cannot express: the reset gate
    scales the state *before* the recurrent matmul. Gates in Keras's order z, r, h."""

    def __init__(self, input_size: int, hidden_size: int, activation: nn.Module | None = None,
                 recurrent_activation: nn.Module | None = None) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.activation = activation or nn.Tanh()
        self.recurrent_activation = recurrent_activation or nn.Sigmoid()
        self.weight_ih = nn.Parameter(torch.zeros(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.zeros(3 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(3 * hidden_size))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x_z, x_r, x_h = F.linear(x, self.weight_ih, self.bias).chunk(3, dim=-1)
        w_z, w_r, w_h = self.weight_hh.chunk(3)
        z = self.recurrent_activation(x_z + h @ w_z.T)
        r = self.recurrent_activation(x_r + h @ w_r.T)
        candidate = self.activation(x_h + (r * h) @ w_h.T)
        return z * h + (1 - z) * candidate
'''

BLOCKS["KerasLSTMCell"] = '''
class KerasLSTMCell(nn.Module):
    """A Keras LSTM step with its own activations (nn.LSTMCell has tanh and sigmoid
    only). Gates in the order i, f, c, o, as torch's; Keras's one bias."""

    def __init__(self, input_size: int, hidden_size: int, activation: nn.Module,
                 recurrent_activation: nn.Module) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.weight_ih = nn.Parameter(torch.zeros(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.zeros(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))

    def forward(self, x: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (F.linear(x, self.weight_ih, self.bias) + h @ self.weight_hh.T).chunk(4, -1)
        gate = self.recurrent_activation
        c = gate(f) * c + gate(i) * self.activation(g)
        o = gate(o)
        return o * self.activation(c), c
'''

BLOCKS["KerasGRUCell"] = '''
class KerasGRUCell(nn.Module):
    """A Keras GRU(reset_after=True) step with its own activations (nn.GRUCell has tanh
    and sigmoid only). Gates in Keras's order z, r, h; its input and recurrent biases."""

    def __init__(self, input_size: int, hidden_size: int, activation: nn.Module,
                 recurrent_activation: nn.Module) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.weight_ih = nn.Parameter(torch.zeros(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.zeros(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden_size))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x_z, x_r, x_h = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        h_z, h_r, h_h = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        candidate = self.activation(x_h + r * h_h)
        return z * h + (1 - z) * candidate
'''

BLOCKS["Bidirectional"] = '''
class Bidirectional(nn.Module):
    """Keras Bidirectional: one layer reads forwards, the other backwards; the backward
    sequence is flipped back into step order before the two are merged. Returns the
    merged output (two with merge_mode None), then the forward and backward states."""

    def __init__(self, forward_layer: nn.Module, backward_layer: nn.Module,
                 merge_mode: str | None, return_sequences: bool) -> None:
        super().__init__()
        self.forward_layer, self.backward_layer = forward_layer, backward_layer
        self.merge_mode, self.return_sequences = merge_mode, return_sequences

    def forward(self, x: torch.Tensor, *states: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        half = len(states) // 2
        y, *forward_states = self.forward_layer(x, *states[:half], mask=mask)
        y_rev, *backward_states = self.backward_layer(x, *states[half:], mask=mask)
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        if self.merge_mode is None:
            merged: tuple[torch.Tensor, ...] = (y, y_rev)
        elif self.merge_mode == "concat":
            merged = (torch.cat([y, y_rev], dim=-1),)
        elif self.merge_mode == "sum":
            merged = (y + y_rev,)
        elif self.merge_mode == "ave":
            merged = ((y + y_rev) / 2,)
        else:  # "mul"
            merged = (y * y_rev,)
        return (*merged, *forward_states, *backward_states)
'''

BLOCKS["Masking"] = '''
class Masking(nn.Module):
    """Keras Masking: zeroes the steps whose features all equal mask_value (the mask
    itself is computed in forward, where the layers that read it get it)."""

    def __init__(self, mask_value: float) -> None:
        super().__init__()
        self.mask_value = mask_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x != self.mask_value).any(dim=-1, keepdim=True)
'''

BLOCKS["MaskedAveragePooling1D"] = '''
class MaskedAveragePooling1D(nn.Module):
    """Keras GlobalAveragePooling1D given a mask: the mean of the unmasked steps only."""

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = mask[..., None].to(x.dtype)
        return (x * weight).sum(dim=1, keepdim=self.keepdims) / weight.sum(
            dim=1, keepdim=self.keepdims)
'''
