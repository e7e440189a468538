"""SimpleRNN, LSTM and GRU (reset_after True and False), batch first."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..converted import Converted, Site, Trap
from ._util import array, kernel_trap
from .activations import identify

RECURRENT = kernel_trap("(in, gates * units)", "weight_ih (gates * units, in): transposed")


def plain(layer: Any) -> bool:
    """Defaults nn.LSTM/nn.GRU share: tanh, sigmoid gates, forwards, no state returned."""
    act = identify(layer.activation)
    gate = identify(getattr(layer, "recurrent_activation", layer.activation))
    return (act is not None and act[0] == "tanh" and not act[1]
            and gate is not None and gate[0] in ("sigmoid", "tanh") and not gate[1]
            and not layer.go_backwards and not layer.return_state and not layer.stateful)


def sequence_post(layer: Any) -> str:
    return "{y}[0]" if layer.return_sequences else "{y}[0][:, -1]"


def cell_weights(layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    cell = layer.cell
    bias = array(cell.bias) if cell.use_bias else None
    return array(cell.kernel), array(cell.recurrent_kernel), bias


def simple_rnn(layer: Any, site: Site) -> Converted | None:
    if not plain(layer):
        return None
    kernel, recurrent, bias = cell_weights(layer)
    units = recurrent.shape[0]
    weights = {"weight_ih_l0": kernel.T.copy(), "weight_hh_l0": recurrent.T.copy()}
    if bias is not None:
        weights["bias_ih_l0"], weights["bias_hh_l0"] = bias, np.zeros_like(bias)
    extra = "" if bias is not None else ", bias=False"
    return Converted(f"nn.RNN({kernel.shape[0]}, {units}, batch_first=True{extra})",
                     ("cl",), "cl", weights, post=sequence_post(layer), traps=[RECURRENT])


def lstm(layer: Any, site: Site) -> Converted | None:
    if not plain(layer) or identify(layer.recurrent_activation) != ("sigmoid", {}):
        return None
    kernel, recurrent, bias = cell_weights(layer)
    units = recurrent.shape[0]
    weights = {"weight_ih_l0": kernel.T.copy(), "weight_hh_l0": recurrent.T.copy()}
    traps = [RECURRENT]
    if bias is not None:
        weights["bias_ih_l0"], weights["bias_hh_l0"] = bias, np.zeros_like(bias)
        traps.append(Trap("lstm-bias", "Keras has one bias, torch two (summed): the second "
                          "is zeros; gate order i, f, c, o is the same"))
    extra = "" if bias is not None else ", bias=False"
    return Converted(f"nn.LSTM({kernel.shape[0]}, {units}, batch_first=True{extra})",
                     ("cl",), "cl", weights, post=sequence_post(layer), traps=traps)


def zrh_to_rzn(a: np.ndarray, units: int) -> np.ndarray:
    """Keras's gate blocks z, r, h along axis 0 -> torch's r, z, n."""
    z, r, h = a[:units], a[units:2 * units], a[2 * units:]
    return np.ascontiguousarray(np.concatenate([r, z, h]))


def gru(layer: Any, site: Site) -> Converted | None:
    if not plain(layer) or identify(layer.recurrent_activation) != ("sigmoid", {}):
        return None
    kernel, recurrent, bias = cell_weights(layer)
    units = recurrent.shape[0]
    if not layer.reset_after:
        weights = {"weight_ih": kernel.T.copy(), "weight_hh": recurrent.T.copy(),
                   "bias": bias if bias is not None else np.zeros(3 * units, np.float32)}
        trap = Trap("gru-reset-after", "Keras GRU(reset_after=False) resets h before the "
                    "recurrent matmul; nn.GRU after: a cell of its own")
        return Converted(f"GRUResetBefore({kernel.shape[0]}, {units})", ("cl",), "cl", weights,
                         post=sequence_post(layer), traps=[RECURRENT, trap],
                         helpers=("GRUResetBefore",))
    weights = {"weight_ih_l0": zrh_to_rzn(kernel.T, units),
               "weight_hh_l0": zrh_to_rzn(recurrent.T, units)}
    if bias is not None:
        weights["bias_ih_l0"] = zrh_to_rzn(bias[0], units)
        weights["bias_hh_l0"] = zrh_to_rzn(bias[1], units)
    extra = "" if bias is not None else ", bias=False"
    trap = Trap("gru-gate-order", "Keras orders the gates z, r, h; torch r, z, n: blocks swapped")
    return Converted(f"nn.GRU({kernel.shape[0]}, {units}, batch_first=True{extra})",
                     ("cl",), "cl", weights, post=sequence_post(layer), traps=[RECURRENT, trap])


CONVERTERS = {"SimpleRNN": simple_rnn, "LSTM": lstm, "GRU": gru}
