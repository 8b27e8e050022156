import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_config_round_trip, check_layer
from tfllm.layers import FeedForward


def test_swiglu_formula():
    ff = FeedForward(6, activation="swiglu", use_bias=False)
    x = tf.random.normal((2, 3, 4))
    y = ff(x)
    h = tf.nn.silu(x @ ff.mlp_gate.kernel) * (x @ ff.mlp_in.kernel)
    np.testing.assert_allclose(y, h @ ff.mlp_out.kernel, atol=1e-5)


def test_relu2_formula():
    ff = FeedForward(6, activation="relu2")
    x = tf.random.normal((2, 4))
    y = ff(x)
    h = tf.square(tf.nn.relu(ff.mlp_in(x)))
    np.testing.assert_allclose(y, ff.mlp_out(h), atol=1e-5)


def test_unknown_activation():
    with pytest.raises(ValueError, match="gelu"):
        FeedForward(8, activation="tanh")


@pytest.mark.parametrize("activation", ["gelu", "swiglu", "relu2"])
def test_config_round_trip(activation):
    assert_config_round_trip(FeedForward(8, activation=activation), tf.zeros((1, 2, 4)))


@pytest.mark.parametrize("activation", ["gelu", "swiglu", "relu2"])
def test_layer_contract(activation):
    check_layer(lambda: FeedForward(8, activation=activation), tf.random.normal((1, 2, 4)))
