"""Checks shared by the layer and model tests (in the spirit of keras-hub's TestCase)."""

import numpy as np
import tensorflow as tf

from tfllm._keras import keras


def assert_config_round_trip(layer, inputs):
    """from_config(get_config()) builds a layer of the same config and output shape."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone(inputs).shape == layer(inputs).shape


def assert_causal(fn, batch=2, length=6, width=8, dtype=tf.float32, integer_vocab=None):
    """No gradient flows from inputs at positions > t to outputs at position t."""
    if integer_vocab:
        raise ValueError("use assert_causal_tokens for token inputs")
    x = tf.random.normal((batch, length, width), dtype=dtype)
    for t in range(length):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)[:, t]
            target = tf.reduce_sum(y * tf.random.normal(tf.shape(y)))
        grad = tape.gradient(target, x).numpy()
        assert np.all(grad[:, t + 1:] == 0), f"position {t} sees the future"
        assert np.any(grad[:, :t + 1] != 0), f"position {t} sees nothing"


def policy(name):
    keras.mixed_precision.set_global_policy(name)
