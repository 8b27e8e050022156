import numpy as np
import tensorflow as tf

from tests.helpers import assert_config_round_trip, check_layer
from tfllm.layers import RotaryEmbedding


def test_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding()
    q = tf.random.stateless_normal((1, 1, 1, 8), seed=[0, 1])
    k = tf.random.stateless_normal((1, 1, 1, 8), seed=[0, 2])

    def score(m, n):
        return float(tf.reduce_sum(rope(q, start_index=m) * rope(k, start_index=n)))

    np.testing.assert_allclose(score(3, 1), score(10, 8), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(score(0, 0), score(7, 7), rtol=1e-4, atol=1e-6)
    assert abs(score(5, 0) - score(0, 5)) > 1e-4  # direction matters, it is not a plain distance


def test_preserves_norm_and_position_zero_is_identity():
    rope = RotaryEmbedding()
    x = tf.random.normal((2, 5, 3, 8))
    y = rope(x)
    np.testing.assert_allclose(tf.norm(y, axis=-1), tf.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], x[:, 0], atol=1e-6)


def test_start_index_continues_a_sequence():
    rope = RotaryEmbedding()
    x = tf.random.normal((1, 6, 2, 4))
    np.testing.assert_allclose(rope(x)[:, 4:], rope(x[:, 4:], start_index=4), atol=1e-6)


def test_config_round_trip():
    assert_config_round_trip(RotaryEmbedding(max_wavelength=500), tf.zeros((1, 2, 2, 4)))


def test_layer_contract():
    check_layer(lambda: RotaryEmbedding(max_wavelength=500), tf.random.normal((1, 2, 2, 4)))
