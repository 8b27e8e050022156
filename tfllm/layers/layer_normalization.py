"""Layer normalization computed in float32, with an optional bias."""

import tensorflow as tf

from tfllm._keras import keras, register


@register("tfllm")
class LayerNormalization(keras.layers.Layer):
    """Normalizes the last axis to zero mean and unit variance, then scales (and shifts).

    Keras ships a LayerNormalization too; this one always reduces in float32 whatever
    the compute dtype and can drop the bias (`use_bias=False`), as modern LMs do.

    Args:
        epsilon: added to the variance.
        use_bias: learn a shift as well as a scale.

    Example:
        >>> LayerNormalization()(tf.random.normal((2, 3, 8))).shape
        TensorShape([2, 3, 8])
    """

    def __init__(self, epsilon=1e-5, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.use_bias = use_bias

    def build(self, input_shape):
        # Not autocast: the normalization arithmetic below stays float32 under mixed precision.
        dim = input_shape[-1]
        self.gamma = self.add_weight("gamma", shape=(dim,), initializer="ones",
                                     experimental_autocast=False)
        self.beta = (self.add_weight("beta", shape=(dim,), initializer="zeros",
                                    experimental_autocast=False)
                     if self.use_bias else None)
        super().build(input_shape)

    def call(self, x):
        # Mean and variance in float32: bf16 has 8 bits of mantissa, too few for them.
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon) * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, use_bias=self.use_bias)
        return config
