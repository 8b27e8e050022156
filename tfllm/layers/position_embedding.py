"""Learned absolute position embedding."""

import tensorflow as tf

from tfllm._keras import fresh_initializer, keras, register


@register("tfllm")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a sequence of embeddings.

    Args:
        max_length: the longest sequence it can embed.
        initializer: initializer of the (max_length, D) table.

    Call args:
        x: (B, T, D) embeddings.
        start_index: position of x[:, 0]; scalar int (non-zero when decoding with a cache).

    Example:
        >>> PositionEmbedding(max_length=64)(tf.zeros((2, 10, 32))).shape
        TensorShape([2, 10, 32])
    """

    def __init__(self, max_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            "embeddings", shape=(self.max_length, input_shape[-1]), initializer=fresh_initializer(self.initializer))
        super().build(input_shape)

    def call(self, x, start_index=0, positions=None):
        """`positions` (B, T): each token's own position (packed examples restart at 0);
        default start_index + [0, T)."""
        table = tf.cast(self.position_embeddings, self.compute_dtype)
        if positions is not None:
            return x + tf.gather(table, positions)  # (B, T, D)
        seq_len = tf.shape(x)[1]
        # A gather, not tf.slice: DTensor's graph expansion crashes on a slice with a
        # dynamic begin (TF 2.21, a segmentation fault).
        return x + tf.gather(table, start_index + tf.range(seq_len))[tf.newaxis]

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length,
                      initializer=keras.initializers.serialize(self.initializer))
        return config
