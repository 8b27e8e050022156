"""A stack of LSTM or GRU layers with dropout between them.

Dimensions: B batch, T time steps, D input width, U units per layer, L layers.
"""

import tensorflow as tf

from tfllm._keras import keras, register
from tfllm.layers.dropout import Dropout
from tfllm.layers.fused_lstm import FusedLSTM

CELLS = ("lstm", "gru")


@register("tfllm")
class RecurrentBlock(keras.layers.Layer):
    """L stacked recurrent layers (B, T, D) -> (B, T, U), optionally carrying state.

    Each layer is named `rnn_{i}`: a FusedLSTM (Keras's LSTM math, a faster loop) or a
    Keras GRU. Their kernels are what quantization wraps.

    Args:
        cell: "lstm" or "gru".
        units: U.
        num_layers: L.
        dropout: applied to each layer's output sequence when training.

    Call args:
        x: (B, T, D).
        initial_state: optional list with one entry per layer: [h, c] for LSTM, [h] for GRU,
            each (B, U).
        return_state: also return the final states (same structure), to continue
            decoding one step at a time.

    Example:
        >>> RecurrentBlock("lstm", units=32, num_layers=2)(tf.zeros((2, 5, 8))).shape
        TensorShape([2, 5, 32])
    """

    def __init__(self, cell="lstm", units=256, num_layers=1, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"Unknown recurrent cell {cell!r}; use one of {CELLS}.")
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.dropout = dropout

    def build(self, input_shape):
        self.rnn_layers = []
        shape = input_shape
        for i in range(self.num_layers):
            if self.cell == "lstm":
                layer = FusedLSTM(self.units, dtype=self.dtype_policy, name=f"rnn_{i}")
            else:
                layer = keras.layers.GRU(self.units, return_sequences=True, return_state=True,
                                         dtype=self.dtype_policy, name=f"rnn_{i}")
            layer.build(shape)
            self.rnn_layers.append(layer)
            shape = tuple(shape[:-1]) + (self.units,)
        self.output_dropout = Dropout(self.dropout, dtype=self.dtype_policy,
                                                   name="output_dropout")
        super().build(input_shape)

    def call(self, x, initial_state=None, return_state=False, training=None):
        states = []
        for i, layer in enumerate(self.rnn_layers):
            state = None if initial_state is None else list(initial_state[i])
            outputs = layer(x, initial_state=state, training=training)
            x, layer_state = outputs[0], outputs[1:]
            x = self.output_dropout(x, training=training)
            states.append(layer_state)
        return (x, states) if return_state else x

    def get_initial_state(self, batch_size):
        """Zero states for `batch_size` sequences, in the structure `call` takes."""
        per_layer = 2 if self.cell == "lstm" else 1
        zeros = tf.zeros((batch_size, self.units), self.compute_dtype)
        return [[zeros] * per_layer for _ in range(self.num_layers)]

    def get_config(self):
        config = super().get_config()
        config.update(cell=self.cell, units=self.units, num_layers=self.num_layers,
                      dropout=self.dropout)
        return config
