"""Token embedding whose matrix can also serve as the output projection."""

import tensorflow as tf

from tfllm._keras import fresh_initializer, keras, register


@register("tfllm")
class TokenEmbedding(keras.layers.Layer):
    """Maps token ids to vectors; `attend` maps vectors back to vocabulary logits.

    Args:
        vocab_size: number of tokens V.
        hidden_dim: embedding width D.
        embeddings_initializer: initializer of the (V, D) matrix.

    Example:
        >>> emb = TokenEmbedding(vocab_size=65, hidden_dim=128)
        >>> x = emb(tf.constant([[1, 2, 3]]))   # (1, 3, 128)
        >>> logits = emb.attend(x)             # (1, 3, 65), float32
    """

    def __init__(self, vocab_size, hidden_dim, embeddings_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            "embeddings", shape=(self.vocab_size, self.hidden_dim),
            initializer=fresh_initializer(self.embeddings_initializer))
        super().build(input_shape)

    def call(self, token_ids):
        # (B, T) -> (B, T, D)
        table = tf.cast(self.embeddings, self.compute_dtype)
        return tf.gather(table, tf.cast(token_ids, tf.int32))

    def attend(self, x):
        """Tied output projection (B, T, D) -> (B, T, V) logits in float32."""
        table = tf.cast(self.embeddings, self.compute_dtype)
        logits = tf.einsum("btd,vd->btv", x, table)
        # Logits feed a softmax over V classes: float32 keeps it accurate under bf16/fp16.
        return tf.cast(logits, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_dim=self.hidden_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
