"""A frozen token embedding held as int8 with one float32 scale per token."""

import tensorflow as tf

from tfllm._keras import keras, register
from tfllm.layers.int8_linear import int8_matmul, quantize_int8


@register("tfllm")
class Int8Embedding(keras.layers.Layer):
    """TokenEmbedding's frozen int8 twin: rows are int8 values times a per-row scale, so a
    looked-up vector and the tied head's logits (x @ table.T, one scale per output token)
    are those of the float table the values approximate (within half a step per weight).
    `embeddings` gives that float table.

    Example:
        >>> emb = TokenEmbedding(65, 16); emb.build(None)
        >>> Int8Embedding.from_layer(emb).attend(tf.ones((1, 2, 16))).shape
        TensorShape([1, 2, 65])
    """

    def __init__(self, vocab_size, hidden_dim, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_dim = vocab_size, hidden_dim
        self.values = self.add_weight("embeddings_int8", shape=(vocab_size, hidden_dim),
                                      dtype=tf.int8, initializer="zeros", trainable=False)
        self.scale = self.add_weight("embeddings_scale", shape=(vocab_size,), dtype=tf.float32,
                                     initializer="ones", trainable=False)
        self.built = True

    @classmethod
    def from_layer(cls, layer):
        """The int8 copy of a built TokenEmbedding (its name and dtype policy)."""
        quantized = cls(layer.vocab_size, layer.hidden_dim, dtype=layer.dtype_policy,
                        name=layer.name)
        values, scale = quantize_int8(layer.embeddings, axis=1)
        quantized.values.assign(values)
        quantized.scale.assign(scale)
        return quantized

    def dequantized(self):
        """A TokenEmbedding holding the float table (`embeddings`), for merging and export."""
        from tfllm.layers.token_embedding import TokenEmbedding

        plain = TokenEmbedding(self.vocab_size, self.hidden_dim, dtype=self.dtype_policy,
                               name=self.name)
        plain.build(None)
        plain.embeddings.assign(self.embeddings)
        return plain

    @property
    def embeddings(self):
        return tf.cast(self.values, tf.float32) * self.scale[:, None]

    def call(self, token_ids):
        ids = tf.cast(token_ids, tf.int32)
        rows = tf.cast(tf.gather(self.values, ids), self.compute_dtype)
        return rows * tf.cast(tf.gather(self.scale, ids), self.compute_dtype)[..., None]

    def attend(self, x):
        """Tied output projection (B, T, D) -> (B, T, V) logits in float32."""
        return tf.cast(int8_matmul(x, self.values, self.scale, transpose=True), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, hidden_dim=self.hidden_dim)
        return config
