import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_config_round_trip, check_layer
from tfllm.layers import Dropout


@pytest.mark.parametrize("jit_compile", [False, True])  # Philox, and ThreeFry inside XLA
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drops_rate_and_keeps_expectation(rate, jit_compile):
    layer = Dropout(rate)
    x = tf.random.uniform((50, 101, 201), 1.0, 2.0)  # 1.0 M elements, an odd count
    y = tf.function(lambda x: layer(x, training=True), jit_compile=jit_compile)(x).numpy()
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 0.003
    np.testing.assert_allclose(y[~dropped], x.numpy()[~dropped] / (1 - rate), rtol=1e-4)
    assert abs(y.mean() / x.numpy().mean() - 1) < 0.003
    # Every position is dropped sometimes: the two 16-bit halves of a draw both reach the mask.
    assert 0 < dropped[:, :, :100].mean() and 0 < dropped[:, :, 100:].mean()


def test_identity_outside_training_and_at_rate_zero():
    x = tf.random.normal((4, 8, 16))
    np.testing.assert_array_equal(Dropout(0.5)(x, training=False), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)


def test_masks_follow_the_generator_state():
    """A restored generator (as a resumed run's) draws the same masks; the next draw differs."""
    layer = Dropout(0.3)
    x = tf.ones((8, 64))
    layer(x, training=False)
    generator = layer._random_generator._generator
    state = generator.state.numpy()
    first = layer(x, training=True).numpy()
    second = layer(x, training=True).numpy()
    generator.state.assign(state)
    np.testing.assert_array_equal(layer(x, training=True), first)
    assert not np.array_equal(first, second)


def test_gradient_is_the_mask_times_the_scale():
    layer = Dropout(0.25)
    x = tf.random.normal((16, 32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(grad, np.where(y.numpy() == 0, 0.0, 1 / 0.75), rtol=1e-6)


def test_bfloat16_inputs():
    x = tf.ones((32, 32), tf.bfloat16)
    y = Dropout(0.5, dtype="mixed_bfloat16")(x, training=True)
    assert y.dtype == tf.bfloat16
    assert set(np.unique(y.numpy().astype(np.float32))) == {0.0, 2.0}


def test_config_round_trip():
    assert_config_round_trip(Dropout(0.2), tf.zeros((2, 3)))


def test_layer_contract():
    check_layer(lambda: Dropout(0.2), tf.random.normal((2, 3)))
