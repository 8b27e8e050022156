import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_causal, check_layer
from tfllm._keras import keras
from tfllm.layers import FusedLSTM


def outputs_and_gradients(layer, x, state, compile_with=None):
    """[outputs, h, c] and the gradients of a loss over all three with respect to x,
    the initial state and every weight."""
    weights = tf.random.stateless_normal(x.shape[:2] + (layer.units,), seed=[1, 2])

    def run():
        with tf.GradientTape() as tape:
            tape.watch([x] + state)
            y, h, c = layer(x, initial_state=state)
            loss = tf.reduce_sum(y * weights) + tf.reduce_sum(h * h) + tf.reduce_sum(c * c * c)
        return [y, h, c] + tape.gradient(loss, [x] + state + layer.trainable_variables)

    if compile_with is not None:
        run = tf.function(run, jit_compile=compile_with)
    return run()


@pytest.mark.parametrize("compile_with", [None, False, True], ids=["eager", "graph", "xla"])
def test_equals_keras_lstm_with_the_same_weights(compile_with):
    x = tf.random.normal((3, 7, 5))
    state = [tf.random.normal((3, 6)), tf.random.normal((3, 6))]
    reference = keras.layers.LSTM(6, return_sequences=True, return_state=True)
    reference(x)
    fused = FusedLSTM(6)
    fused(x)
    fused.set_weights(reference.get_weights())
    expected = outputs_and_gradients(reference, x, state)
    got = outputs_and_gradients(fused, x, state, compile_with)
    names = ["outputs", "h", "c", "d_x", "d_h0", "d_c0", "d_kernel", "d_recurrent", "d_bias"]
    for name, a, b in zip(names, expected, got):
        np.testing.assert_allclose(b, a, atol=2e-5, err_msg=name)


def test_initial_weights_match_keras_layout():
    layer = FusedLSTM(4)
    layer(tf.zeros((1, 2, 3)))
    assert layer.kernel.shape == (3, 16) and layer.recurrent_kernel.shape == (4, 16)
    np.testing.assert_array_equal(layer.bias.numpy(), [0] * 4 + [1] * 4 + [0] * 8)  # forget = 1


def test_causal_and_config_round_trip():
    layer = FusedLSTM(8)
    assert_causal(lambda x: layer(x)[0], width=4)
    layer = FusedLSTM(4, unit_forget_bias=False)
    clone = FusedLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = tf.zeros((1, 3, 2))
    assert [t.shape for t in clone(x)] == [t.shape for t in layer(x)] == [(1, 3, 4), (1, 4), (1, 4)]


def test_layer_contract():
    check_layer(lambda: FusedLSTM(4, unit_forget_bias=False), tf.random.normal((2, 3, 2)),
                call=lambda layer, x: layer(x)[0])
