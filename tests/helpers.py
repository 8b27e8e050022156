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


def check_layer(make, inputs, call=None, decode=None):
    """The Keras layer contract every tfllm layer keeps (keras-hub's run_layer_test, in
    brief), for the layer `make()` builds (under the global dtype policy) and `inputs`:

    - its config round-trips (from_config(get_config()): the same config, the same shape);
    - saved and loaded through Keras serialization by its registered name, with the
      weights set, it computes the same outputs;
    - under mixed_bfloat16 its float variables stay float32 and its outputs are finite;
    - `decode(layer, inputs)`, where the layer decodes step by step, returns (full forward,
      cached decode) and they are equal.

    `call(layer, inputs)` computes its outputs (default: layer(inputs)).
    """
    call = call or (lambda layer, x: layer(x))
    layer = make()
    expected = call(layer, inputs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert call(clone, inputs).shape == expected.shape
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    call(restored, inputs)  # builds it
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(call(restored, inputs), expected, rtol=1e-6, atol=1e-6)
    _check_mixed_precision(make, inputs, call)
    if decode is not None:
        full, cached = decode(layer, inputs)
        np.testing.assert_allclose(cached, full, rtol=1e-4, atol=1e-5)


def _check_mixed_precision(make, inputs, call):
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = make()
        outputs = call(layer, inputs)
        # (integer variables, an int8 base's values, keep their type)
        assert all(v.dtype == tf.float32 or v.dtype.is_integer for v in layer.weights), [
            (v.name, v.dtype) for v in layer.weights if v.dtype != tf.float32]
        assert np.all(np.isfinite(tf.cast(outputs, tf.float32).numpy()))
    finally:
        keras.mixed_precision.set_global_policy(old)
