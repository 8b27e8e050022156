"""Root-mean-square normalization (Zhang & Sennrich 2019)."""

import tensorflow as tf

from tfllm._keras import keras, register


@register("tfllm")
class RMSNormalization(keras.layers.Layer):
    """Scales the last axis by the inverse of its root mean square, then by a learned gain.

    Args:
        epsilon: added to the mean square.

    Example:
        >>> RMSNormalization()(tf.random.normal((2, 3, 8))).shape
        TensorShape([2, 3, 8])
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        # Not autocast: the normalization arithmetic below stays float32 under mixed precision.
        self.gamma = self.add_weight("gamma", shape=(input_shape[-1],), initializer="ones",
                                     experimental_autocast=False)
        super().build(input_shape)

    def call(self, x):
        # The mean square in float32: in bf16 it under- and overflows for wide layers.
        x32 = tf.cast(x, tf.float32)
        mean_square = tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True)
        y = x32 * tf.math.rsqrt(mean_square + self.epsilon) * self.gamma
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config
