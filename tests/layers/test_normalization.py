import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_config_round_trip, check_layer, policy
from tfllm.layers import LayerNormalization, RMSNormalization


def test_layer_norm_matches_formula():
    x = np.random.randn(2, 3, 8).astype("float32")
    y = LayerNormalization(epsilon=1e-5)(x).numpy()
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_rms_norm_matches_formula():
    x = np.random.randn(2, 3, 8).astype("float32")
    y = RMSNormalization(epsilon=1e-6)(x).numpy()
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6), atol=1e-5)


@pytest.mark.parametrize("cls", [LayerNormalization, RMSNormalization])
def test_bfloat16_policy_reduces_in_float32(cls):
    policy("mixed_bfloat16")
    layer = cls()
    x = tf.constant(np.random.randn(2, 64).astype("float32") * 300 + 1000)
    y = layer(tf.cast(x, tf.bfloat16))
    assert y.dtype == tf.bfloat16 and layer.gamma.dtype == tf.float32
    reference = cls(dtype="float32")(x)
    np.testing.assert_allclose(tf.cast(y, tf.float32), reference, atol=0.05)


def test_layer_norm_without_bias_and_config():
    layer = LayerNormalization(use_bias=False)
    layer(tf.zeros((1, 4)))
    assert [w.name.split(":")[0].split("/")[-1] for w in layer.weights] == ["gamma"]
    assert_config_round_trip(layer, tf.zeros((1, 4)))
    assert_config_round_trip(RMSNormalization(epsilon=1e-3), tf.zeros((1, 4)))


def test_layer_contract():
    check_layer(lambda: LayerNormalization(use_bias=False), tf.random.normal((2, 4)))
    check_layer(lambda: RMSNormalization(epsilon=1e-3), tf.random.normal((2, 4)))
