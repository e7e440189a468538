"""SimpleRNN, LSTM and GRU (reset_after True and False), and Bidirectional; batch first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap
from ._util import array, kernel_trap
from .activations import identify

RECURRENT = kernel_trap("(in, gates * units)", "weight_ih (gates * units, in): transposed")
LSTM_BIAS = Trap("lstm-bias", "Keras has one bias, torch two (summed): the second is zeros; "
                 "the gate order i, f, c, o is the same")
GRU_ORDER = Trap("gru-gate-order", "Keras orders the gates z, r, h; torch r, z, n: blocks swapped")
GRU_RESET = Trap("gru-reset-after", "Keras GRU(reset_after=False) resets h before the recurrent "
                 "matmul; nn.GRU after: a cell of its own")


@dataclass
class Rnn:
    torch_class: str  # "LSTM", "GRU", "RNN"
    input_size: int
    units: int
    bias: bool
    weights: dict[str, np.ndarray]  # nn.LSTM's names, without the "_l0" suffix's direction
    traps: list[Trap]


def plain(layer: Any, backwards: bool = False) -> bool:
    """What nn.LSTM/nn.GRU/nn.RNN do: tanh, sigmoid gates, one direction, no state out."""
    act = identify(layer.activation)
    gate_fn = getattr(layer, "recurrent_activation", None)
    gate = identify(gate_fn) if gate_fn is not None else ("sigmoid", {})
    return (act == ("tanh", {}) and gate == ("sigmoid", {})
            and layer.go_backwards == backwards and not layer.return_state
            and not layer.stateful)


def zrh_to_rzn(a: np.ndarray, units: int) -> np.ndarray:
    """Keras's gate blocks z, r, h along axis 0 -> torch's r, z, n."""
    z, r, h = a[:units], a[units:2 * units], a[2 * units:]
    return np.ascontiguousarray(np.concatenate([r, z, h]))


def rnn(layer: Any, backwards: bool = False) -> Rnn | None:
    """nn.LSTM/GRU/RNN's weights for a Keras recurrent layer nn's own class can express."""
    kind = type(layer).__name__
    if kind not in ("LSTM", "GRU", "SimpleRNN") or not plain(layer, backwards):
        return None
    cell = layer.cell
    kernel, recurrent = array(cell.kernel), array(cell.recurrent_kernel)
    bias = array(cell.bias) if cell.use_bias else None
    units = recurrent.shape[0]
    w_ih, w_hh = kernel.T.copy(), recurrent.T.copy()
    traps = [RECURRENT]
    b_ih = b_hh = None
    if kind == "GRU":
        if not layer.reset_after:
            return None
        w_ih, w_hh = zrh_to_rzn(w_ih, units), zrh_to_rzn(w_hh, units)
        if bias is not None:
            b_ih, b_hh = zrh_to_rzn(bias[0], units), zrh_to_rzn(bias[1], units)
        traps.append(GRU_ORDER)
    elif bias is not None:
        b_ih, b_hh = bias, np.zeros_like(bias)
        if kind == "LSTM":
            traps.append(LSTM_BIAS)
    weights = {"weight_ih": w_ih, "weight_hh": w_hh}
    if b_ih is not None and b_hh is not None:
        weights |= {"bias_ih": b_ih, "bias_hh": b_hh}
    torch_class = {"SimpleRNN": "RNN"}.get(kind, kind)
    return Rnn(torch_class, kernel.shape[0], units, bias is not None, weights, traps)


def module(r: Rnn, extra: str = "") -> str:
    bias = "" if r.bias else ", bias=False"
    return f"nn.{r.torch_class}({r.input_size}, {r.units}, batch_first=True{bias}{extra})"


def recurrent(layer: Any, site: Site) -> Converted | None:
    if type(layer).__name__ == "GRU" and not layer.reset_after:
        return gru_reset_before(layer)
    r = rnn(layer)
    if r is None:
        return None
    post = "{y}[0]" if layer.return_sequences else "{y}[0][:, -1]"
    return Converted(module(r), ("cl",), "cl", {f"{k}_l0": v for k, v in r.weights.items()},
                     post=post, traps=r.traps)


def gru_reset_before(layer: Any) -> Converted | None:
    if not plain(layer):
        return None
    cell = layer.cell
    kernel, recurrent = array(cell.kernel), array(cell.recurrent_kernel)
    units = recurrent.shape[0]
    bias = array(cell.bias) if cell.use_bias else np.zeros(3 * units, np.float32)
    weights = {"weight_ih": kernel.T.copy(), "weight_hh": recurrent.T.copy(), "bias": bias}
    post = "{y}[0]" if layer.return_sequences else "{y}[0][:, -1]"
    return Converted(f"GRUResetBefore({kernel.shape[0]}, {units})", ("cl",), "cl", weights,
                     post=post, traps=[RECURRENT, GRU_RESET], helpers=("GRUResetBefore",))


def bidirectional(layer: Any, site: Site) -> Converted | None:
    fwd, bwd = rnn(layer.forward_layer), rnn(layer.backward_layer, backwards=True)
    if (fwd is None or bwd is None or layer.merge_mode != "concat"
            or (fwd.torch_class, fwd.units, fwd.bias) != (bwd.torch_class, bwd.units, bwd.bias)):
        return None
    weights = {f"{k}_l0": v for k, v in fwd.weights.items()}
    weights |= {f"{k}_l0_reverse": v for k, v in bwd.weights.items()}
    if layer.return_sequences:
        post, traps = "{y}[0]", fwd.traps
    else:  # h_n: each direction's final state, the backward one's being at step 0
        state = "{y}[1][0]" if fwd.torch_class == "LSTM" else "{y}[1]"
        post = f"torch.cat(list({state}), dim=-1)"
        traps = [*fwd.traps, Trap("bidirectional-last-step", "the backward direction ends at "
                                  "step 0: Keras concatenates the two final states", "forward")]
    return Converted(module(fwd, ", bidirectional=True"), ("cl",), "cl", weights, post=post,
                     traps=traps)


CONVERTERS = {"SimpleRNN": recurrent, "LSTM": recurrent, "GRU": recurrent,
              "Bidirectional": bidirectional}
