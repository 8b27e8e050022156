"""LSTM / GRU language model.

Dimensions: B batch, T time steps, E embedding width, U recurrent units, V vocabulary.
"""

import tensorflow as tf

from tfllm._keras import Keras2Model, keras, register
from tfllm.layers.dropout import Dropout
from tfllm.layers.recurrent_block import RecurrentBlock
from tfllm.layers.token_embedding import TokenEmbedding
from tfllm.models.presets import PresetMixin


@register("tfllm")
class RecurrentLM(PresetMixin, Keras2Model):
    """Token ids (B, T) -> next-token logits (B, T, V), float32, through stacked LSTM/GRU.

    `call_with_state` continues from carried states, one step or many at a time.

    Args:
        vocab_size: V.
        embedding_dim: E.
        units: U.
        num_layers: stacked recurrent layers.
        cell: "lstm" or "gru".
        dropout: on embeddings and between recurrent layers.
        max_length: the training context; recurrent models are not bound by it, it is
            kept so every model states its training window.

    Example:
        >>> model = RecurrentLM.from_preset("small", vocab_size=65)
        >>> model(tf.zeros((2, 16), tf.int32)).shape
        TensorShape([2, 16, 65])
    """

    presets = {
        "nano": dict(embedding_dim=32, units=64, num_layers=1, max_length=64),
        "small": dict(embedding_dim=128, units=384, num_layers=2, max_length=128),
        "medium": dict(embedding_dim=256, units=768, num_layers=3, max_length=256),
    }

    def __init__(self, vocab_size, embedding_dim, units, num_layers=1, cell="lstm",
                 dropout=0.0, max_length=128, remat="none", **kwargs):
        super().__init__(**kwargs)
        if remat != "none":  # its activations are the recurrent states: no blocks to recompute
            raise ValueError(f"a RecurrentLM has no blocks to recompute; remat={remat!r} must "
                             "be 'none'.")
        self.remat = remat
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = dropout
        self.max_length = max_length
        policy = self.dtype_policy
        self.token_embedding = TokenEmbedding(
            vocab_size, embedding_dim, embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            dtype=policy, name="token_embedding")
        self.embedding_dropout = Dropout(dropout, dtype=policy, name="embedding_dropout")
        self.recurrent = RecurrentBlock(cell, units=units, num_layers=num_layers, dropout=dropout,
                                        dtype=policy, name="recurrent")
        self.lm_head = keras.layers.Dense(vocab_size, dtype=policy, name="lm_head")
        self.build((None, None))

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.recurrent.build((None, None, self.embedding_dim))
        self.lm_head.build((None, None, self.units))
        super().build(input_shape)

    def call(self, token_ids, training=None):
        return self._forward(token_ids, training)

    @tf.autograph.experimental.do_not_convert  # as GPT._forward: nothing here needs AutoGraph
    def _forward(self, token_ids, training):
        x = self.embedding_dropout(self.token_embedding(token_ids), training=training)
        x = self.recurrent(x, training=training)
        return tf.cast(self.lm_head(x), tf.float32)  # float32 logits for the softmax

    def init_state(self, batch_size):
        """Zero recurrent states for `batch_size` sequences."""
        return self.recurrent.get_initial_state(batch_size)

    @tf.autograph.experimental.do_not_convert
    def call_with_state(self, token_ids, states):
        """(logits (B, t, V), new states) continuing from `states`."""
        x = self.token_embedding(token_ids)
        x, states = self.recurrent(x, initial_state=states, return_state=True, training=False)
        return tf.cast(self.lm_head(x), tf.float32), states

    def get_config(self):
        return {
            "name": self.name, "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim, "units": self.units,
            "num_layers": self.num_layers, "cell": self.cell, "dropout": self.dropout,
            "max_length": self.max_length, "remat": self.remat,
        }
