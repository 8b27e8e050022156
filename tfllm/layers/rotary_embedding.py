"""Rotary position embedding (RoPE, Su et al. 2021)."""

import tensorflow as tf

from tfllm._keras import keras, register


@register("tfllm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotates pairs of channels of queries or keys by position-dependent angles.

    The dot product of a rotated query at position m and a rotated key at position n
    depends on m - n only, which is what makes RoPE a relative position encoding.
    Channels are paired as (i, i + hs/2), the GPT-NeoX / LLaMA convention.

    Args:
        max_wavelength: the base of the geometric progression of frequencies.

    Call args:
        x: (B, T, H, hs) queries or keys, hs even.
        start_index: position of x[:, 0] (non-zero when decoding with a cache).
        positions: (B, T) each token's own position instead (packed examples restart at 0).

    Example:
        >>> RotaryEmbedding()(tf.ones((1, 5, 2, 8))).shape
        TensorShape([1, 5, 2, 8])
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, x, start_index=0, positions=None):
        head_dim = x.shape[-1]
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head size, got {head_dim}.")
        seq_len = tf.shape(x)[1]
        # Angles in float32: bf16 positions lose integer precision beyond 256.
        inv_freq = 1.0 / (self.max_wavelength ** (tf.range(0, head_dim, 2, dtype=tf.float32) / head_dim))
        if positions is None:
            positions = (tf.range(seq_len) + start_index)[tf.newaxis]  # (1, T)
        angles = tf.cast(positions, tf.float32)[..., tf.newaxis] * inv_freq  # (B|1, T, hs/2)
        cos = tf.cos(angles)[:, :, tf.newaxis, :]                           # (B|1, T, 1, hs/2)
        sin = tf.sin(angles)[:, :, tf.newaxis, :]
        x1, x2 = tf.split(tf.cast(x, tf.float32), 2, axis=-1)
        rotated = tf.concat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        return tf.cast(rotated, x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength)
        return config
