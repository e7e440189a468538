"""SimpleRNN, LSTM and GRU (reset_after True and False), and Bidirectional; batch first.

A plain layer (no mask, no state in or out, read forwards) is nn.LSTM/GRU/RNN. Any
other is `Recurrent`, a loop over the matching torch cell, written into model.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ..converted import Converted, Site, Trap, repeat
from ._util import array, kernel_trap
from .activations import torch_activation

RECURRENT = kernel_trap("(in, gates * units)", "weight_ih (gates * units, in): transposed")
LSTM_BIAS = Trap("lstm-bias", "Keras has one bias, torch two (summed): the second is zeros; "
                 "the gate order i, f, c, o is the same")
GRU_ORDER = Trap("gru-gate-order", "Keras orders the gates z, r, h; torch r, z, n: blocks swapped")
GRU_RESET = Trap("gru-reset-after", "Keras GRU(reset_after=False) resets h before the recurrent "
                 "matmul; nn.GRU after: a cell of its own")
MASKED = Trap("rnn-mask", "Keras's mask: a masked step keeps the state and repeats the last "
              "output; nn.LSTM/GRU have no mask: a loop over the cell", "forward")
ACTIVATIONS = Trap("rnn-activations", "activations other than tanh and sigmoid gates: a cell "
                   "of model.py's (torch's cells have those two only)")
BACKWARDS = Trap("go-backwards", "go_backwards reads the sequence from its end and returns "
                 "the steps in that (reversed) order", "forward")


CELLS = ("GRUResetBefore", "KerasLSTM", "KerasGRU")  # cells model.py writes: {name}Cell


@dataclass
class Rnn:
    torch_class: str  # "LSTM", "GRU", "RNN", or one of CELLS
    input_size: int
    units: int
    bias: bool
    weights: dict[str, np.ndarray]  # the torch cell's names
    traps: list[Trap]
    extra: str = ""  # further constructor arguments: activations

    def cell(self) -> str:
        if self.torch_class in CELLS:
            return f"{self.torch_class}Cell({self.input_size}, {self.units}{self.extra})"
        bias = "" if self.bias else ", bias=False"
        return f"nn.{self.torch_class}Cell({self.input_size}, {self.units}{bias}{self.extra})"

    def module(self, extra: str = "") -> str:
        bias = "" if self.bias else ", bias=False"
        return (f"nn.{self.torch_class}({self.input_size}, {self.units}, batch_first=True"
                f"{bias}{self.extra}{extra})")


def activations(layer: Any) -> tuple[str, str, list[Trap]] | None:
    """The layer's activation and recurrent activation as module sources, or None."""
    gate_fn = getattr(layer, "recurrent_activation", None)
    gate_fn = gate_fn or keras.activations.sigmoid  # SimpleRNN has no gates
    found = [torch_activation(fn, 2, "cl") for fn in (layer.activation, gate_fn)]
    if found[0] is None or found[1] is None or layer.stateful:
        return None
    (act, _, act_traps), (gate, _, gate_traps) = found[0], found[1]
    return act, gate, [*act_traps, *gate_traps]


def custom(kind: str, layer: Any, act: str, gate: str, traps: list[Trap]) -> str | None:
    """Constructor arguments for a cell with the layer's own activations; None where
    torch's cell takes no such argument (a SimpleRNN's other than tanh and relu)."""
    if (act, gate) == ("nn.Tanh()", "nn.Sigmoid()"):
        return ""
    if kind == "SimpleRNN":  # nn.RNN has tanh and relu
        return ', nonlinearity="relu"' if act == "nn.ReLU()" else None
    traps.append(ACTIVATIONS)
    return f", {act}, {gate}"


def zrh_to_rzn(a: np.ndarray, units: int) -> np.ndarray:
    """Keras's gate blocks z, r, h along axis 0 -> torch's r, z, n."""
    z, r, h = a[:units], a[units:2 * units], a[2 * units:]
    return np.ascontiguousarray(np.concatenate([r, z, h]))


def rnn(layer: Any) -> Rnn | None:
    """The torch cell's weights for a Keras recurrent layer, or None (stateful, or
    activations no cell here computes: a stub, which says why)."""
    kind = type(layer).__name__
    acts = activations(layer) if kind in ("LSTM", "GRU", "SimpleRNN") else None
    if acts is None:
        return None
    traps = [RECURRENT, *acts[2]]
    extra = custom(kind, layer, *acts[:2], traps)
    if extra is None:
        return None
    cell = layer.cell
    kernel, recurrent = array(cell.kernel), array(cell.recurrent_kernel)
    bias = array(cell.bias) if cell.use_bias else None
    units = recurrent.shape[0]
    w_ih, w_hh = kernel.T.copy(), recurrent.T.copy()
    if kind == "GRU" and layer.reset_after and extra:
        zeros = np.zeros(3 * units, np.float32)
        b_ih, b_hh = (bias[0], bias[1]) if bias is not None else (zeros, zeros)
        return Rnn("KerasGRU", kernel.shape[0], units, True,
                   {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh},
                   traps, extra)
    if (kind == "GRU" and not layer.reset_after) or (kind == "LSTM" and extra):
        gates = 3 if kind == "GRU" else 4
        b = bias if bias is not None else np.zeros(gates * units, np.float32)
        name = "GRUResetBefore" if kind == "GRU" else "KerasLSTM"
        traps += [GRU_RESET] if kind == "GRU" else []
        return Rnn(name, kernel.shape[0], units, True,
                   {"weight_ih": w_ih, "weight_hh": w_hh, "bias": b}, traps, extra)
    b_ih = b_hh = None
    if kind == "GRU":
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
    return Rnn(torch_class, kernel.shape[0], units, bias is not None, weights, traps, extra)


def cells(r: Rnn) -> tuple[str, ...]:
    """The cell block model.py must define for `r`, if torch has none."""
    return (f"{r.torch_class}Cell",) if r.torch_class in CELLS else ()


def arguments(site: Site) -> str | None:
    """The call's arguments: the sequence, initial states, then mask=; None for others."""
    args = []
    for i, role in enumerate(site.roles):
        if (i, role) == (0, "0") or role == "initial_state":
            args.append(f"{{x{i}}}")
        elif role == "mask":
            args.append(f"mask={{x{i}}}")
        else:
            return None
    return None if site.options or not args else ", ".join(args)


def loop(layer: Any, r: Rnn) -> str:
    """`Recurrent(cell, ...)`: the Keras layer as a loop over its torch cell."""
    extra = ", go_backwards=True" if layer.go_backwards else ""
    extra += ", zero_masked=True" if layer.zero_output_for_mask else ""
    return f"Recurrent({r.cell()}, return_sequences={bool(layer.return_sequences)!r}{extra})"


def simple(site: Site, r: Rnn, layer: Any) -> bool:
    """What nn.LSTM/GRU/RNN does alone: one sequence in, read forwards, one output."""
    return (site.roles == ("0",) and r.torch_class in ("LSTM", "GRU", "RNN")
            and not layer.go_backwards and not layer.return_state)


def loop_traps(site: Site, layer: Any) -> list[Trap]:
    return ([MASKED] if "mask" in site.roles else []) + ([BACKWARDS] if layer.go_backwards else [])


def recurrent(layer: Any, site: Site) -> Converted | None:
    r, args = rnn(layer), arguments(site)
    if r is None or args is None:
        return None
    wants = repeat("cl", len(site.roles))
    if simple(site, r, layer):
        post = "{y}[0]" if layer.return_sequences else "{y}[0][:, -1]"
        return Converted(r.module(), wants, "cl", {f"{k}_l0": v for k, v in r.weights.items()},
                         post=post, traps=r.traps)
    return Converted(loop(layer, r), wants, "cl", {f"cell.{k}": v for k, v in r.weights.items()},
                     call=f"{{m}}({args})", post="{y}" if layer.return_state else "{y}[0]",
                     traps=[*r.traps, *loop_traps(site, layer)],
                     helpers=("Recurrent", *cells(r)))


LAST_STEP = Trap("bidirectional-last-step", "the backward direction ends at step 0: Keras "
                 "merges the two final states", "forward")
# nn.LSTM(bidirectional=True)'s output, the two directions side by side, merged as Keras does.
SEQUENCE_MERGE = {"concat": "{y}[0]", "sum": "torch.stack({y}[0].chunk(2, dim=-1)).sum(0)",
                  "ave": "torch.stack({y}[0].chunk(2, dim=-1)).mean(0)",
                  "mul": "torch.stack({y}[0].chunk(2, dim=-1)).prod(0)",
                  None: "{y}[0].chunk(2, dim=-1)"}
# Its final states h_n, (2, batch, units): forward's, then backward's (which ends at step 0).
STATE_MERGE = {"concat": "torch.cat(list({h}), dim=-1)", "sum": "{h}.sum(0)",
               "ave": "{h}.mean(0)", "mul": "{h}.prod(0)", None: "tuple({h})"}


def bidirectional(layer: Any, site: Site) -> Converted | None:
    fwd_layer, bwd_layer = layer.forward_layer, layer.backward_layer
    fwd, bwd, args = rnn(fwd_layer), rnn(bwd_layer), arguments(site)
    if fwd is None or bwd is None or args is None:
        return None
    wants = repeat("cl", len(site.roles))
    mode = layer.merge_mode
    if (simple(site, fwd, fwd_layer) and bwd_layer.go_backwards and not layer.return_state
            and (fwd.torch_class, fwd.units, fwd.bias) == (bwd.torch_class, bwd.units, bwd.bias)):
        weights = {f"{k}_l0": v for k, v in fwd.weights.items()}
        weights |= {f"{k}_l0_reverse": v for k, v in bwd.weights.items()}
        traps = list(fwd.traps)
        if layer.return_sequences:
            post = SEQUENCE_MERGE[mode]
        else:
            h = "{y}[1][0]" if fwd.torch_class == "LSTM" else "{y}[1]"
            post = STATE_MERGE[mode].replace("{h}", h)
            traps.append(LAST_STEP)
        return Converted(fwd.module(", bidirectional=True"), wants, "cl", weights, post=post,
                         traps=traps)
    weights = {f"forward_layer.cell.{k}": v for k, v in fwd.weights.items()}
    weights |= {f"backward_layer.cell.{k}": v for k, v in bwd.weights.items()}
    # Bidirectional returns the merged output(s), then the states Keras returns only if asked.
    post = "{y}" if layer.return_state else "{y}[0]" if mode is not None else "{y}[:2]"
    helpers = {"Recurrent", "Bidirectional", *cells(fwd), *cells(bwd)}
    traps = [*fwd.traps, *[t for t in bwd.traps if t not in fwd.traps]]
    return Converted(f"Bidirectional({loop(fwd_layer, fwd)}, {loop(bwd_layer, bwd)}, "
                     f"merge_mode={mode!r}, return_sequences={bool(layer.return_sequences)!r})",
                     wants, "cl", weights, call=f"{{m}}({args})",
                     post=post,
                     traps=[*traps, *loop_traps(site, fwd_layer)], helpers=tuple(sorted(helpers)))


CONVERTERS = {"SimpleRNN": recurrent, "LSTM": recurrent, "GRU": recurrent,
              "Bidirectional": bidirectional}
