"""Where the lessons teach each trap the porter applies: (lesson id, section heading).

The porter reports trap keys; the page that shows a port links each to its section.
"""

from __future__ import annotations

PORTING, PORTING_2, WHOLE_MODEL = "porting", "porting-2", "porting-a-whole-model"

LESSONS: dict[str, tuple[str, str]] = {
    "kernel-layout": (PORTING, "Dense → Linear: transpose the kernel"),
    "same-padding-stride": (WHOLE_MODEL, 'Strided "same" padding: where the windows start'),
    "same-padding-even-kernel": (WHOLE_MODEL, 'Strided "same" padding: where the windows start'),
    "flatten-channels-last": (WHOLE_MODEL, "Flatten after channels-last convolutions"),
    "bn-momentum-epsilon": (WHOLE_MODEL, "BatchNormalization: epsilon, momentum and eval mode"),
    "bn-center-scale": (PORTING, "BatchNormalization: four tensors and other defaults"),
    "layernorm-epsilon": (PORTING, "BatchNormalization: four tensors and other defaults"),
    "lstm-bias": (PORTING, "Recurrent layers: LSTM and GRU"),
    "gru-gate-order": (PORTING, "Recurrent layers: LSTM and GRU"),
    "hard-sigmoid": (PORTING, "Recurrent layers: LSTM and GRU"),
    "gru-reset-after": (PORTING, "GRU with reset_after=False: write the cell"),
    "causal-padding": (PORTING_2, "Conv1D and Conv2DTranspose"),
    "transpose-same-crop": (PORTING_2, "Conv1D and Conv2DTranspose"),
    "mha-in-proj": (PORTING_2, "MultiHeadAttention → nn.MultiheadAttention"),
    "mha-batch-first": (PORTING_2, "MultiHeadAttention → nn.MultiheadAttention"),
    "pool-same-padding": (PORTING_2, 'Pooling with "same" padding, then Flatten'),
    "bidirectional-last-step": ("sequences", "Bidirectional layers"),
    "inference-noop": ("modules", "Training and evaluation mode"),
    "leaky-relu-slope": (WHOLE_MODEL, "LeakyReLU's slope and Normalization's statistics"),
    "normalization-stats": (WHOLE_MODEL, "LeakyReLU's slope and Normalization's statistics"),
}
# Traps no lesson teaches yet.
UNTAUGHT = frozenset({"rnn-mask", "go-backwards",
                      "attention-mask", "rnn-activations"})
